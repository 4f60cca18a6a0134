"""Atomic, permission-aware file writing and small JSON helpers.

Every result file is written to a temporary file in the same directory and renamed into
place, so a crash never leaves a half-written file that a rerun would take as complete.
"""

from __future__ import annotations

import json
import os
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
