"""SLURM launcher: the service job as a detached batch job (sbatch --parsable, squeue/sacct, scancel).

The job script is generated from the service's resources and the run's SLURM settings; every
value is validated by the schemas and shell-quoted here. Secrets never appear in it: the service
job reads them from the 0600 secrets file on the shared filesystem.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from aibench.files import write_text
from aibench.launchers.base import JobState, JobStatus
from aibench.records import from_json, plain
from aibench.rundir import ServiceDir

#: sbatch option for each resource key of a service recipe / the run's slurm settings
SBATCH_OPTIONS = {
    "account": "--account",
    "partition": "--partition",
    "qos": "--qos",
    "nodes": "--nodes",
    "cpus": "--cpus-per-task",
    "mem_mb": "--mem",
    "time_min": "--time",
    "gres": "--gres",
    "gpus": "--gpus",
    "constraint": "--constraint",
    "reservation": "--reservation",
}
ENDED = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)


class SlurmError(RuntimeError):
    pass


def _run(argv: list[str], timeout: float = 60) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]} not found: is this a SLURM login node (module load slurm?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(argv)} did not answer within {timeout:g} s") from None
    if done.returncode != 0:
        raise SlurmError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def job_script(argv: list[str], log: Path, job_name: str, options: Mapping[str, Any]) -> str:
    """The batch script: #SBATCH lines from ``options['resources']``, module lines, then ``argv``."""
    resources = {k: v for k, v in options.get("resources", {}).items() if v not in (None, "", 0)}
    # one task (a service job), or ``tasks_per_node`` on each of its nodes (the client nodes' agents)
    per_node = options.get("tasks_per_node")
    lines = [
        "#!/bin/bash -l",
        f"#SBATCH --job-name={shlex.quote(job_name)}",
        f"#SBATCH --output={shlex.quote(str(log))}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --ntasks-per-node={int(per_node)}" if per_node else "#SBATCH --ntasks=1",
        # the service job gets SIGTERM 60 s before the time limit: it stops cleanly and removes its targets
        "#SBATCH --signal=B:TERM@60",
        # never rerun by SLURM after a node failure (JobRequeue=1 is slurm.conf's default): a requeued
        # service job would start again, unwatched, after its run has failed and ended
        "#SBATCH --no-requeue",
    ]
    for key, option in SBATCH_OPTIONS.items():
        if key in resources:
            lines.append(f"#SBATCH {option}={shlex.quote(str(resources[key]))}")
    for extra in options.get("sbatch_extra", []):
        lines.append(f"#SBATCH {shlex.quote(extra)}")
    lines += [
        "set -euo pipefail",
        f'echo "[aibench job $SLURM_JOB_ID on $(hostname)]" {shlex.quote(job_name)}',
    ]
    for modules in options.get("modules", []):  # each entry: one or more module names
        lines.append("module load " + " ".join(shlex.quote(m) for m in modules.split()))
    # exec: the service job is the batch shell's process, so scancel's SIGTERM reaches it directly
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SlurmJob:
    """A service job submitted as a batch job; its node is known once it runs (squeue)."""

    LAUNCHER: ClassVar[str] = "slurm"
    job_name: str
    job_id: str
    log: str
    script: str
    submitted_at: float

    @property
    def ident(self) -> str:
        return self.job_id

    @property
    def node(self) -> str | None:
        return None

    def to_json(self) -> dict[str, Any]:
        return {"launcher": self.LAUNCHER, **plain(self)}

    @classmethod
    def from_json(cls, data: object, where: str) -> SlurmJob:
        return from_json(cls, data, where, fixed={"launcher": cls.LAUNCHER})


class SlurmLauncher:
    name = SlurmJob.LAUNCHER
    job_type = SlurmJob

    def start(
        self,
        argv: list[str],
        service_dir: ServiceDir,
        job_name: str,
        options: Mapping[str, Any] | None = None,
    ) -> SlurmJob:
        script = service_dir.job_script
        write_text(script, job_script(argv, service_dir.log, job_name, options or {}), perms=0o700)
        out = _run(["sbatch", "--parsable", f"--chdir={service_dir.path}", str(script)])
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out!r}, expected a job id")
        return SlurmJob(job_name, job_id, str(service_dir.log), str(script), time.time())

    def _squeue(self, job_id: str) -> tuple[str, str] | None:
        out = _run(["squeue", "-h", "-j", job_id, "-o", "%T|%N"]).strip()
        if not out:
            return None
        state, _, node = out.splitlines()[0].partition("|")
        return state, node

    def _sacct(self, job_id: str) -> str | None:
        try:
            out = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"]).strip()
        except SlurmError:
            return None  # accounting disabled: squeue is all there is
        return out.splitlines()[0].split()[0] if out else None

    def state(self, job: SlurmJob) -> JobStatus:
        try:
            queued = self._squeue(job.job_id)
        except SlurmError as exc:
            if "Invalid job id" in str(exc):
                queued = None
            else:
                raise
        if queued is not None:
            state, node = queued
            if state == "RUNNING":
                return JobStatus(JobState.RUNNING, node)
            if state in ENDED or state in ("COMPLETING", "STOPPED"):
                return JobStatus(JobState.ENDED, state)
            return JobStatus(JobState.PENDING, state)

        return JobStatus(JobState.ENDED, self._sacct(job.job_id) or "gone from the queue")

    def stop(self, job: SlurmJob, grace_s: float) -> str:
        job_id = job.job_id
        if self.state(job).ended:
            return "already ended"
        _run(["scancel", job_id])  # SIGTERM to the batch shell (exec'd service job), SIGKILL after KillWait
        deadline = time.monotonic() + grace_s + 60
        while time.monotonic() < deadline:
            queued = self._squeue(job_id)
            if queued is None or queued[0] in ENDED:  # not COMPLETING: its processes are gone
                return "scancel"
            time.sleep(0.2)

        _run(["scancel", "--signal=KILL", "--full", job_id])
        return "scancel --signal=KILL"
