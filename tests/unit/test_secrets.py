"""read_secrets refuses a secrets file anyone but its reader could have written or read: another user's,
a symlink (to anything, even a good file), a group/other-readable one, and anything not a regular file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from aibench.secrets import read_secrets, write_secrets

VALUES = {"MYSQL_PASSWORD": "s3cret", "MYSQL_USER": "bench"}
NOBODY = 65534


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.env"
    write_secrets(path, VALUES)
    return path


def test_a_good_file_is_read(good: Path) -> None:
    assert good.stat().st_mode & 0o777 == 0o600 and good.stat().st_uid == os.geteuid()
    assert read_secrets(good) == VALUES


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_file_owned_by_another_user_is_refused(good: Path) -> None:
    os.chown(good, NOBODY, -1)
    with pytest.raises(PermissionError, match=f"{good}: .*owned by the current user .*uid {NOBODY}"):
        read_secrets(good)


def test_a_symlink_is_refused_even_to_a_good_file(good: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.env"
    link.symlink_to(good)
    with pytest.raises(PermissionError, match=f"{link}: secrets file must not be a symlink"):
        read_secrets(link)
    dangling = tmp_path / "dangling.env"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(PermissionError, match="must not be a symlink"):
        read_secrets(dangling)


def test_a_group_or_other_readable_file_is_refused(good: Path) -> None:
    for mode in (0o644, 0o640, 0o604):
        good.chmod(mode)
        with pytest.raises(PermissionError, match=f"{good}: secrets file must be mode 0600, is {mode:04o}"):
            read_secrets(good)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "secrets.env"
    os.mkfifo(fifo, 0o600)
    # should a reader block on it after all, a writer comes by and releases it: a failure, not a hang
    release = threading.Timer(5, lambda: os.close(os.open(fifo, os.O_WRONLY)))
    release.daemon = True
    release.start()
    try:
        with pytest.raises(PermissionError, match=f"{fifo}: secrets file must be a regular file"):
            read_secrets(fifo)
    finally:
        release.cancel()


def test_a_missing_file_is_still_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secrets(tmp_path / "missing.env")
