"""Launchers: how a long-running service job is started and stopped (local process, SLURM job)."""

from __future__ import annotations

from aibench.launchers.base import Launcher
from aibench.launchers.local import LocalLauncher
from aibench.launchers.slurm import SlurmLauncher

LAUNCHERS: dict[str, type] = {LocalLauncher.name: LocalLauncher, SlurmLauncher.name: SlurmLauncher}


def get_launcher(name: str) -> Launcher:
    try:
        return LAUNCHERS[name]()
    except KeyError:
        raise KeyError(f"unknown launcher {name!r} (known: {', '.join(sorted(LAUNCHERS))})") from None


__all__ = ["LAUNCHERS", "Launcher", "get_launcher"]
