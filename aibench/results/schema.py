"""The common results schema: metric records and the per-point summary.json.

Documented in docs/architecture.md ("Results"); the version is aibench.RESULTS_SCHEMA_VERSION.
"""

from __future__ import annotations

import gzip
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aibench import RESULTS_SCHEMA_VERSION, __version__
from aibench.files import atomic_open, write_json
from aibench.hardware import node_hardware
from aibench.rundir import PointDir


@dataclass(frozen=True)
class Metric:
    """One number: ``name`` (throughput, latency, ...), ``stat`` (mean, p99, ...), value and unit.

    ``labels`` qualify it (e.g. the Redis command); ``formula`` names how it was computed.
    """

    name: str
    stat: str
    value: float
    unit: str
    labels: dict[str, str] = field(default_factory=dict)
    formula: str = ""
    #: the 95% interval of ``value`` (None where unbounded or not estimated; its method is the formula's
    #: ``ci`` parameter) and the sample it came from (aibench.results.stats)
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    #: the sample is too small to estimate this stat (its interval is unbounded on a side)
    low_n: bool = False


@dataclass
class PointResult:
    """What a client returns for one point: metrics, raw bytes (CSV), and a status."""

    metrics: list[Metric]
    raw_csv: bytes
    tool: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None


def provenance() -> dict[str, Any]:
    return {
        "aibench_version": __version__,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "written_at": time.time(),
        "hardware": node_hardware(),
    }


def summary_document(
    *,
    experiment: str,
    point: str,
    repeat: int,
    params: dict[str, Any],
    swept: dict[str, Any],
    service: dict[str, Any],
    client: dict[str, Any],
    window: dict[str, float],
    result: PointResult,
    deployment: str | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "experiment": experiment,
        # the service-sweep combination the point ran on (None: the experiment has one deployment)
        "deployment": deployment,
        "point": point,
        "repeat": repeat,
        "params": params,
        "swept": swept,
        "service": service,
        "client": {**client, "tool": result.tool},
        "window": window,
        "status": result.status,
        "error": result.error,
        "metrics": [asdict(m) for m in result.metrics],
        "provenance": provenance(),
    }


def write_point(out_dir: PointDir | str | os.PathLike[str], summary: dict[str, Any], raw_csv: bytes) -> None:
    """Write the raw records then the summary, each atomically (summary last: it marks completion)."""
    point = PointDir.of(out_dir)
    with atomic_open(point.raw, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
        gz.write(raw_csv)
    write_json(point.summary, summary)
