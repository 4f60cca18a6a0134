"""What a launcher does: start a long-running service job, tell its state, stop it.

A launcher knows nothing about Redis or Prometheus; a service knows nothing about launchers.
The handle a launcher returns is plain JSON (no secrets) kept in ``handle.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol


class Launcher(Protocol):
    name: ClassVar[str]

    def start(
        self, argv: list[str], log: Path, workdir: Path, job_name: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start ``argv`` detached; its output goes to ``log``. Returns the handle.

        ``options`` carry launcher-specific settings (for SLURM: resources, modules, extra sbatch lines).
        """

        ...

    def state(self, handle: dict[str, Any]) -> str:
        """'running', 'pending' or 'ended', with detail after a colon (e.g. 'ended: CANCELLED')."""

        ...

    def stop(self, handle: dict[str, Any], grace_s: float) -> str:
        """Stop the job and everything it started; returns how ('SIGTERM', 'SIGKILL', 'already ended')."""
        ...
