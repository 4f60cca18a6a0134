"""What a launcher does: start a long-running service job, tell its state, stop it.

A launcher knows nothing about Redis or Prometheus; a service knows nothing about launchers.
The job a launcher returns (its own dataclass: LocalJob, SlurmJob) is plain JSON without secrets,
kept in ``handle.json`` (aibench.contracts.Handle).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from aibench.rundir import ServiceDir


class JobState(enum.Enum):
    """What a launcher can tell of a service job."""

    PENDING = "pending"  # queued, not started yet
    RUNNING = "running"
    ENDED = "ended"  # the job and everything it started are gone
    ORPHANED = "orphaned"  # the job ended; processes it started did not
    UNKNOWN = "unknown"  # cannot be told from here (started on another host)


@dataclass(frozen=True)
class JobStatus:
    """A job's state, with the launcher's detail (a SLURM state, a node, how many orphans)."""

    state: JobState
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state.value}: {self.detail}" if self.detail else self.state.value

    @property
    def pending(self) -> bool:
        return self.state is JobState.PENDING

    @property
    def ended(self) -> bool:
        return self.state is JobState.ENDED

    @property
    def job_over(self) -> bool:
        """The job itself has ended (processes it started may live on: ORPHANED)."""
        return self.state in (JobState.ENDED, JobState.ORPHANED)


class Job(Protocol):
    """One started service job, as its launcher finds it again."""

    LAUNCHER: ClassVar[str]
    job_name: str
    log: str
    submitted_at: float

    @property
    def ident(self) -> str:
        """The job id or pid, as shown to a user."""
        ...

    @property
    def node(self) -> str | None:
        """The node it was started on, when its launcher knows it at start."""
        ...

    def to_json(self) -> dict[str, Any]: ...


class Launcher(Protocol):
    name: ClassVar[str]
    #: the dataclass of its jobs (with ``from_json(data, where)``)
    job_type: ClassVar[type]

    def start(
        self,
        argv: list[str],
        service_dir: ServiceDir,
        job_name: str,
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """Start ``argv`` detached in ``service_dir``; its output goes to its log. Returns the job.

        ``options`` carry launcher-specific settings (for SLURM: resources, modules, extra sbatch lines).
        """
        ...

    def state(self, job: Any) -> JobStatus: ...

    def stop(self, job: Any, grace_s: float) -> str:
        """Stop the job and everything it started; returns how ('SIGTERM', 'SIGKILL', 'already ended')."""
        ...
