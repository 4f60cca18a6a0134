"""Per-run credentials: generated randomly, kept in 0600 env files, masked in anything logged."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from aibench.files import write_text

MASK = "********"


def generate_password(nbytes: int = 24) -> str:
    """A URL- and shell-safe random password."""
    return secrets.token_urlsafe(nbytes)


def write_secrets(path: str | os.PathLike[str], values: Mapping[str, str]) -> None:
    """Write KEY=value lines to ``path`` with mode 0600 (created atomically with that mode)."""
    for key, value in values.items():
        if not key.isidentifier() or "\n" in value:
            raise ValueError(f"invalid secret entry {key!r}")
    text = "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
    write_text(path, text, perms=0o600)


def read_secrets(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a secrets env file written by :func:`write_secrets`; refuses group/other-readable files."""
    p = Path(path)
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{p}: secrets file must be mode 0600, is {mode:04o}")
    values: dict[str, str] = {}
    for line in p.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


def mask(text: str, secret_values: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with a mask."""
    for value in secret_values:
        if value:
            text = text.replace(value, MASK)
    return text


def mask_argv(argv: Iterable[str], secret_values: Iterable[str]) -> list[str]:
    values = list(secret_values)
    return [mask(arg, values) for arg in argv]
