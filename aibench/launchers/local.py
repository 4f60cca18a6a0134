"""Local launcher: the service job as a detached process group with a pid file and a log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from aibench.files import write_text


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (it is when started in this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


class LocalLauncher:
    name = "local"

    def start(
        self, argv: list[str], log: Path, workdir: Path, job_name: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start ``argv`` as a new session (process group); ``options`` (SLURM resources) do not apply."""

        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        pid_file = log.parent / "service.pid"
        write_text(pid_file, f"{proc.pid}\n")
        return {
            "launcher": self.name,
            "job_name": job_name,
            "pid": proc.pid,
            "pgid": proc.pid,
            "create_time": psutil.Process(proc.pid).create_time(),
            "node": socket.gethostname(),
            "log": str(log),
            "pid_file": str(pid_file),
            "submitted_at": time.time(),
        }

    def _leader(self, handle: dict[str, Any]) -> psutil.Process | None:
        _reap(handle["pid"])
        try:
            proc = psutil.Process(handle["pid"])
            if abs(proc.create_time() - handle["create_time"]) > 0.5:
                return None  # the pid was reused by an unrelated process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.NoSuchProcess:
            return None

    def _orphans(self, handle: dict[str, Any]) -> list[psutil.Process]:
        """Processes of the job's group still alive after its leader died (e.g. it was SIGKILLed):
        only those started after the job, and not when the group id now belongs to another leader."""
        pgid = handle["pgid"]
        with contextlib.suppress(psutil.NoSuchProcess):
            if abs(psutil.Process(pgid).create_time() - handle["create_time"]) > 0.5:
                return []  # the group id was reused
        members = []
        for proc in group_members(pgid):
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.create_time() >= handle["create_time"] - 0.5:
                    members.append(proc)
        return members

    def state(self, handle: dict[str, Any]) -> str:
        if handle.get("node") not in (None, socket.gethostname()):
            return f"unknown: started on {handle['node']}, this is {socket.gethostname()}"
        if self._leader(handle) is not None:
            return "running"
        if orphans := self._orphans(handle):
            return f"orphaned: the service job ended, {len(orphans)} of its processes did not"
        return "ended"

    def stop(self, handle: dict[str, Any], grace_s: float) -> str:
        pgid = handle["pgid"]
        if self._leader(handle) is None and not self._orphans(handle):
            return "already ended"
        how = "SIGTERM"
        self._signal(pgid, signal.SIGTERM)
        if not self._wait_gone(handle, grace_s):
            how = "SIGKILL"
            self._signal(pgid, signal.SIGKILL)
            if not self._wait_gone(handle, 10.0):
                raise RuntimeError(f"process group {pgid} survived SIGKILL")
        return how

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def _wait_gone(self, handle: dict[str, Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._leader(handle) is None and not self._orphans(handle):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
