"""`aibench query`: PromQL against a run's Prometheus, live or from its saved TSDB.

While the run's Prometheus runs (results/monitoring/endpoint.json, not stopped), the query goes to
it, at the address its service job recorded (its node's, when it bound all addresses: the login node
reaches compute nodes; a loopback-only one is reachable from its own node only). Once it has stopped,
a temporary Prometheus is deployed over a copy of results/monitoring/data (the run's own TSDB is never
written to), bound to 127.0.0.1, scraping nothing, kept for the one query and stopped; it runs the
way the run's own did (natively, or in the same image under Apptainer: the deployment's spec.json).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from aibench import lifecycle, probes
from aibench.contracts import DeploymentSpec, Endpoint, JobSpec, Placement, Runtime
from aibench.errors import AibenchError
from aibench.files import read_json
from aibench.monitoring.prometheus import PrometheusClient
from aibench.records import RecordError
from aibench.rundir import PointDir, RunDir, ServiceDir
from aibench.tunnel import forward_target

#: the saved TSDB's temporary Prometheus: how long it may take to load (replaying its WAL), and a
#: retention no archived run is old enough to lose samples to
SAVED_READY_S, SAVED_RETENTION = 120.0, "100y"


@dataclass(frozen=True)
class Source:
    """Where a query went: the run's live Prometheus, or its saved TSDB."""

    url: str
    live: bool

    def describe(self) -> str:
        saved = "a temporary Prometheus over the run's saved TSDB (results/monitoring/data)"
        return f"the run's live Prometheus at {self.url}" if self.live else saved


def _live(monitoring: ServiceDir) -> Source | None:
    if not monitoring.endpoint.exists() or monitoring.stopped.exists():
        return None
    endpoint = Endpoint.read_recorded(monitoring.endpoint)
    url = f"http://{forward_target(endpoint)}:{endpoint.port}"
    try:
        probes.http(f"{url}/-/ready", timeout=5)
    except probes.NotReady as exc:
        raise AibenchError(
            f"the run's Prometheus ({monitoring.endpoint}: {endpoint.host}:{endpoint.port} on "
            f"{endpoint.node}) does not answer from here: {exc}"
        ) from None
    return Source(url, live=True)


def _runtime(monitoring: ServiceDir) -> tuple[Runtime, str | None]:
    """How the run's own Prometheus ran (native or its image under Apptainer)."""
    if not monitoring.spec.exists():
        return Runtime(), None
    try:
        spec = JobSpec.read(monitoring.spec)
    except RecordError:  # an earlier version's spec.json: the native runtime
        return Runtime(), None
    return spec.runtime, spec.image


@contextlib.contextmanager
def _saved(monitoring: ServiceDir) -> Iterator[Source]:
    if not monitoring.data.is_dir():
        raise AibenchError(f"{monitoring.data}: no saved TSDB (a run without monitoring, or an archive: "
                           "archives leave the TSDB out)")  # fmt: skip
    runtime, image = _runtime(monitoring)
    with tempfile.TemporaryDirectory(prefix="aibench-query-") as tmp:
        tsdb, targets = Path(tmp) / "tsdb", Path(tmp) / "file_sd"
        shutil.copytree(monitoring.data, tsdb, ignore=shutil.ignore_patterns("lock"))
        targets.mkdir()
        params = {"scrape_interval_s": 60, "targets_dir": str(targets), "tsdb_path": str(tsdb),
                  "retention_time": SAVED_RETENTION}  # fmt: skip
        spec = DeploymentSpec("query", "prometheus", params, Placement(runtime=runtime), image=image)
        service = ServiceDir(Path(tmp) / "prometheus")
        lifecycle.deploy(service, spec)
        try:
            ready = lifecycle.wait_ready(service, timeout_s=SAVED_READY_S, interval_s=0.1)
            yield Source(f"http://{ready['host']}:{ready['port']}", live=False)
        finally:
            lifecycle.stop(service)


@contextlib.contextmanager
def prometheus_of(results: str | Path) -> Iterator[Source]:
    """The run's Prometheus while it runs, else a temporary one over its saved TSDB."""
    monitoring = RunDir(results).monitoring
    live = _live(monitoring)
    if live is not None:
        yield live
        return
    with _saved(monitoring) as saved:
        yield saved


def point_window(results: str | Path, experiment: str, point: str) -> dict[str, float]:
    """The point's time window (its summary's ``window``: start, end), found in any deployment."""
    from aibench.archive import read_points

    root = Path(results)
    for p in read_points(root, str(results)):
        if p.experiment == experiment and p.point == point:
            window = read_json(PointDir(p.directory).summary)["window"]
            return {"start": float(window["start"]), "end": float(window["end"])}
    raise AibenchError(f"{results}: no point {point!r} of experiment {experiment!r}")


def run_query(
    source: Source, promql: str, window: dict[str, float] | None, ranged: bool, step_s: float
) -> list[dict[str, Any]]:
    """Rows of the result: each series' labels, then ``time`` and ``value`` (one row per sample of a
    range query; an instant query is evaluated at the window's end, or now)."""
    client = PrometheusClient(source.url, timeout=30)
    try:
        if ranged:
            if window is None:
                raise AibenchError("--range needs a window: --point (with --experiment)")
            result = client.query_range(promql, window["start"], window["end"], step_s)
            samples = [(r["metric"], v) for r in result for v in r["values"]]
        else:
            result = client.query(promql, at=window["end"] if window else None)
            samples = [(r["metric"], r["value"]) for r in result]
    except RuntimeError as exc:  # Prometheus said no: a PromQL error
        raise AibenchError(str(exc)) from None
    except requests.RequestException as exc:
        raise AibenchError(f"Prometheus at {source.url}: {exc}") from None
    return [{**labels, "time": float(at), "value": float(value)} for labels, (at, value) in samples]
