"""Local launcher: the service job as a detached process group with a pid file and a log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil

from aibench.files import write_text
from aibench.launchers.base import JobState, JobStatus
from aibench.records import from_json, plain
from aibench.rundir import ServiceDir


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (it is when started in this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (proc(5), /proc/<pid>/stat field 22); None when no
    such process. Unlike a wall-clock start time (psutil's create_time adds the boot time as read by
    each process, which moves when the clock is stepped), it names one process exactly, from any process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])  # fields from the third (state) on


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


@dataclass(frozen=True)
class LocalJob:
    """A service job started by this launcher: its process group, and the leader's start (clock ticks
    since boot, so a reused pid is never taken for it)."""

    LAUNCHER: ClassVar[str] = "local"
    job_name: str
    pid: int
    pgid: int
    start_ticks: int
    node: str
    log: str
    pid_file: str
    submitted_at: float

    @property
    def ident(self) -> str:
        return str(self.pid)

    def to_json(self) -> dict[str, Any]:
        return {"launcher": self.LAUNCHER, **plain(self)}

    @classmethod
    def from_json(cls, data: object, where: str) -> LocalJob:
        if isinstance(data, dict) and "create_time" in data and "start_ticks" not in data:
            data = _from_create_time(data)
        return from_json(cls, data, where, fixed={"launcher": cls.LAUNCHER})


def _from_create_time(data: dict[str, Any]) -> dict[str, Any]:
    """A handle written before jobs were named by start ticks (it held psutil's create_time): the
    process is taken for the job when it still runs and started within a second of that time (the
    earlier rule), else the handle names no live process."""
    legacy = {k: v for k, v in data.items() if k != "create_time"}
    ticks = 0
    with contextlib.suppress(psutil.Error, TypeError, ValueError):
        if abs(psutil.Process(int(data["pid"])).create_time() - float(data["create_time"])) <= 1.0:
            ticks = start_ticks(int(data["pid"])) or 0
    return {**legacy, "start_ticks": ticks}


class LocalLauncher:
    name = LocalJob.LAUNCHER
    job_type = LocalJob

    def start(
        self,
        argv: list[str],
        service_dir: ServiceDir,
        job_name: str,
        options: Mapping[str, Any] | None = None,
    ) -> LocalJob:
        """Start ``argv`` as a new session (process group); ``options`` (SLURM resources) do not apply."""
        log = service_dir.log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=service_dir.path,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        write_text(service_dir.pid_file, f"{proc.pid}\n")
        return LocalJob(
            job_name=job_name,
            pid=proc.pid,
            pgid=proc.pid,
            start_ticks=start_ticks(proc.pid) or 0,
            node=socket.gethostname(),
            log=str(log),
            pid_file=str(service_dir.pid_file),
            submitted_at=time.time(),
        )

    def _leader(self, job: LocalJob) -> psutil.Process | None:
        _reap(job.pid)
        try:
            proc = psutil.Process(job.pid)
            if start_ticks(job.pid) != job.start_ticks:
                return None  # the pid was reused by an unrelated process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.NoSuchProcess:
            return None

    def _orphans(self, job: LocalJob) -> list[psutil.Process]:
        """Processes of the job's group still alive after its leader died (e.g. it was SIGKILLed):
        only those started after the job, and not when the group id now belongs to another leader."""
        leader = start_ticks(job.pgid)
        if leader is not None and leader != job.start_ticks:
            return []  # the group id was reused
        return [
            proc
            for proc in group_members(job.pgid)
            if (started := start_ticks(proc.pid)) is not None and started >= job.start_ticks
        ]

    def state(self, job: LocalJob) -> JobStatus:
        if job.node != socket.gethostname():
            return JobStatus(JobState.UNKNOWN, f"started on {job.node}, this is {socket.gethostname()}")
        if self._leader(job) is not None:
            return JobStatus(JobState.RUNNING)
        if orphans := self._orphans(job):
            return JobStatus(
                JobState.ORPHANED, f"the service job ended, {len(orphans)} of its processes did not"
            )
        return JobStatus(JobState.ENDED)

    def stop(self, job: LocalJob, grace_s: float) -> str:
        pgid = job.pgid
        if self._leader(job) is None and not self._orphans(job):
            return "already ended"
        how = "SIGTERM"
        self._signal(pgid, signal.SIGTERM)
        if not self._wait_gone(job, grace_s):
            how = "SIGKILL"
            self._signal(pgid, signal.SIGKILL)
            if not self._wait_gone(job, 10.0):
                raise RuntimeError(f"process group {pgid} survived SIGKILL")
        return how

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def _wait_gone(self, job: LocalJob, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._leader(job) is None and not self._orphans(job):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
