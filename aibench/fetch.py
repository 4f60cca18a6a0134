"""`aibench fetch-results USER@HOST:PATH [DEST]`: a run's results from MeluXina to a laptop.

What comes: the run's records as `aibench archive` keeps them (aibench.rundir.is_record), its figures
and report; never an owner-only file (secrets.env and every config file holding a credential are
0600), a service's data (databases, Prometheus' TSDB) or an image. The remote side is asked only for a
file list: ``find PATH -type f -perm /077 -printf '%P\\0'`` over ssh (the files some group or other
bit makes shareable; the owner-only ones are never named, let alone sent), which is then filtered here
by name, and rsync copies exactly those (``--files-from``), over ssh to the login host's port 8822.
rsync's ``--partial`` keeps a half-sent file and skips what is already complete, so an interrupted
fetch resumes where it stopped when run again.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aibench.errors import AibenchError
from aibench.rundir import MANIFEST, is_fetched
from aibench.tunnel import LOGIN_PORT

_REMOTE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>.+)$")


@dataclass(frozen=True)
class Remote:
    user: str | None
    host: str
    path: str

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @classmethod
    def parse(cls, text: str) -> Remote:
        found = _REMOTE.match(text)
        if not found or found["path"].startswith("-") or "\n" in found["path"] or "\0" in found["path"]:
            example = "u100000@login.lxp.lu:aibench/results"
            raise AibenchError(f"{text!r}: expected USER@HOST:PATH (e.g. {example})")
        return cls(found["user"], found["host"], found["path"])


def ssh_command(port: int, options: list[str]) -> list[str]:
    """ssh with the login host's port and the caller's own options (-i KEY, -o ...)."""
    return ["ssh", "-p", str(port), *options]


def remote_files(remote: Remote, ssh: list[str], timeout_s: float = 300) -> list[str]:
    """The shareable files under the remote run, relative to it (never an owner-only one)."""
    command = f"find {shlex.quote(remote.path.rstrip('/') + '/')} -type f -perm /077 -printf '%P\\0'"
    done = subprocess.run([*ssh, remote.login, command], capture_output=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise AibenchError(f"{remote.login}:{remote.path}: listing the run failed ({'; '.join(why[-3:])})")
    return [name for name in done.stdout.decode(errors="replace").split("\0") if name]


def fetch(
    remote: Remote, dest: Path, port: int = LOGIN_PORT, ssh_options: list[str] | None = None
) -> list[str]:
    """Copy the run's fetched files into ``dest``; the relative names copied (or already complete)."""
    if shutil.which("rsync") is None:
        raise AibenchError("rsync is not installed here (apt install rsync, brew install rsync)")
    ssh = ssh_command(port, ssh_options or [])
    names = sorted(n for n in remote_files(remote, ssh) if is_fetched(PurePosixPath(n)))
    if not any(PurePosixPath(n).parts == (MANIFEST,) for n in names):
        raise AibenchError(f"{remote.login}:{remote.path}: no {MANIFEST}: not a finished run's results")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", prefix="aibench-fetch-", suffix=".list") as listing:
        listing.write("\0".join(names) + "\0")  # as find gave them: a name may hold a newline
        listing.flush()
        argv = ["rsync", "--archive", "--partial", "--from0", "--files-from", listing.name,
                "--chmod=Fgo-w,Dgo-w", "-e", shlex.join(ssh), f"{remote.login}:{remote.path.rstrip('/')}/",
                f"{dest}/"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AibenchError(f"rsync from {remote.login}:{remote.path} exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]} (run the command again to resume)")  # fmt: skip
    return names
