"""Exceptions with messages meant for the user (no traceback needed to understand them)."""


class AibenchError(Exception):
    """Base class of every error aibench reports to the user."""


class ConfigError(AibenchError):
    """A config or recipe file is invalid; the message names the file and the field."""


class ServiceError(AibenchError):
    """A service failed to start, become ready or stop; the message carries its log tail."""


class ClientError(AibenchError):
    """A load generator failed; the message says which and where its log is."""
