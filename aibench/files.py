"""Atomic, permission-aware file writing and small JSON helpers.

Every result file is written to a temporary file in the same directory and renamed into
place, so a crash never leaves a half-written file that a rerun would take as complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", perms: int = 0o644) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, perms)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], data: Any, perms: int = 0o644) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, "w", perms) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str, perms: int = 0o644) -> None:
    """Write ``text`` atomically with the given permissions."""
    with atomic_open(path, "w", perms) as handle:
        handle.write(text)


#: largest input file a client reads (prompts, vector datasets)
INPUT_LIMIT = 4 << 30


def input_problem(path: str | os.PathLike[str], limit: int | None = None) -> str | None:
    """Why ``path`` is not a regular file one may read (missing, a directory, a FIFO, socket or device,
    a symlink loop, unreadable, over ``limit`` bytes), or None. Checked before opening: a FIFO would
    block its reader forever, and an unexpectedly huge file would be read whole."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:  # a symlink loop, a name too long, no permission on a directory
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a FIFO, socket or device); give a file"
    if limit is not None and info.st_size > limit:
        return f"is {info.st_size} bytes, more than the {limit} it may have"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def read_input(path: str | os.PathLike[str], limit: int, what: str = "") -> bytes:
    """The bytes of a user-given input file, or a ConfigError naming it (and ``what`` it is for): see
    :func:`input_problem`. Opened non-blocking, so a path swapped for a FIFO after the check cannot
    block either."""
    from aibench.errors import ConfigError

    shown = f"{path}{f' ({what})' if what else ''}"
    problem = input_problem(path, limit)
    if problem is None:
        try:
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    problem = "is not a regular file (a FIFO, socket or device); give a file"
                else:
                    data = handle.read(limit + 1)
                    problem = f"is more than the {limit} bytes it may have" if len(data) > limit else None
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
    if problem is not None:
        raise ConfigError(f"{shown}: {problem}")
    return data


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path) as handle:
        return json.load(handle)


def tail(path: str | os.PathLike[str], lines: int = 30) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    p = Path(path)
    if not p.exists():
        return f"(no log at {p})"
    with open(p, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        data = handle.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])
