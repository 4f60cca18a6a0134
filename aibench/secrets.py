"""Per-run credentials: generated randomly, kept in 0600 env files, masked in anything logged."""

from __future__ import annotations

import errno
import os
import secrets
import stat
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
    """Read a secrets env file written by :func:`write_secrets`.

    Refuses (PermissionError naming the file) a symlink, anything but a regular file, a file owned by
    another user and a group/other-accessible one. The checks are made on the opened file itself
    (O_NOFOLLOW, then fstat), so the file cannot be swapped between the check and the read."""
    p = Path(path)
    try:
        # O_NONBLOCK: a FIFO put in its place opens at once (and is refused below) instead of hanging
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # what O_NOFOLLOW gives for a symlink
            raise PermissionError(f"{p}: secrets file must not be a symlink") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PermissionError(f"{p}: secrets file must be a regular file")
        if info.st_uid != os.geteuid():
            raise PermissionError(
                f"{p}: secrets file must be owned by the current user (uid {os.geteuid()}), "
                f"is owned by uid {info.st_uid}"
            )
        mode = info.st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(f"{p}: secrets file must be mode 0600, is {mode:04o}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd) as handle:
        text = handle.read()
    values: dict[str, str] = {}
    for line in text.splitlines():
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
