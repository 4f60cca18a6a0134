"""Launchers: how a long-running service job is started and stopped (local process, SLURM job)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aibench.launchers.base import Job, JobState, JobStatus, Launcher
from aibench.launchers.local import LocalLauncher
from aibench.launchers.slurm import SlurmLauncher
from aibench.records import RecordError

LAUNCHERS: dict[str, type] = {LocalLauncher.name: LocalLauncher, SlurmLauncher.name: SlurmLauncher}


def get_launcher(name: str) -> Launcher:
    try:
        return LAUNCHERS[name]()
    except KeyError:
        raise KeyError(f"unknown launcher {name!r} (known: {', '.join(sorted(LAUNCHERS))})") from None


def job_from_json(data: Mapping[str, Any], where: str) -> Job:
    """The job a launcher started, from its JSON (which names the launcher)."""
    name = data.get("launcher") if isinstance(data, Mapping) else None
    if name not in LAUNCHERS:
        raise RecordError(
            f"{where}: field 'launcher': {name!r} is not a launcher ({', '.join(sorted(LAUNCHERS))})"
        )
    job: Job = LAUNCHERS[name].job_type.from_json(data, where)
    return job


__all__ = ["LAUNCHERS", "Job", "JobState", "JobStatus", "Launcher", "get_launcher", "job_from_json"]
