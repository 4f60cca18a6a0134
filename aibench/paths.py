"""Where the project's own files (schemas, recipes) are, and the results layout."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the package is installed editable from it).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def schemas_dir() -> Path:
    return Path(os.environ.get("AIBENCH_SCHEMAS", PROJECT_ROOT / "config" / "schemas"))


def data_dir() -> Path:
    """The project's shipped data (data/datasets): $AIBENCH_DATA inside the rule image, which has no
    checkout of the project (envs/aibench.def copies it to /opt/aibench/data)."""
    return Path(os.environ.get("AIBENCH_DATA", PROJECT_ROOT / "data"))


def schema_path(name: str) -> Path:
    """Path of ``config/schemas/<name>.schema.yaml``."""
    return schemas_dir() / f"{name}.schema.yaml"


class RunLayout:
    """The results directory of one run (see docs/architecture.md, 'Results')."""

    def __init__(self, results: str | os.PathLike[str]) -> None:
        self.root = Path(results)

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def targets(self) -> Path:
        """Prometheus file_sd directory: one JSON file per exporter of a running service."""
        return self.monitoring / "targets"

    @property
    def grafana(self) -> Path:
        return self.root / "grafana"

    def service_dir(self, experiment: str) -> Path:
        return self.root / experiment / "service"

    def point_dir(self, experiment: str, point: str) -> Path:
        return self.root / experiment / "points" / point

    def service_dirs(self) -> list[Path]:
        """Every service directory of this run, the monitoring services (Prometheus, Grafana) included."""
        dirs = [d for d in (self.monitoring, self.grafana) if d.is_dir()]
        dirs += sorted(p for p in self.root.glob("*/service") if p.is_dir())
        return dirs
