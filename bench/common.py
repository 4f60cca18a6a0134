"""Shared helpers of the bench/ scripts: a real Redis deployment and redis-benchmark runs."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aibench import lifecycle  # noqa: E402
from aibench.clients.redis_benchmark import command_line, parse_csv  # noqa: E402
from aibench.contracts import DeploymentSpec  # noqa: E402
from aibench.recipes import load_service  # noqa: E402
from aibench.rundir import RunDir, ServiceDir  # noqa: E402

REDIS_PARAMS = load_service(ROOT / "recipes" / "services" / "redis.yaml").params


@contextmanager
def deployment(
    workdir: Path, monitored: bool, kind: str = "redis", params: dict | None = None
) -> Iterator[tuple[ServiceDir, dict]]:
    """A service deployed by the workflow's own lifecycle; when monitored, with the run's Prometheus
    (1 s scrapes) and every exporter the service job starts (kind's, node), waited for until up."""
    run = RunDir(workdir)
    targets = str(run.targets) if monitored else None
    started = []
    try:
        if monitored:
            prometheus = {"scrape_interval_s": 1, "targets_dir": targets}
            lifecycle.deploy(run.monitoring, DeploymentSpec("monitoring", "prometheus", prometheus))
            started.append(run.monitoring)
            lifecycle.wait_ready(run.monitoring, 60, 0.1)
        service_dir = run.service("bench")
        params = REDIS_PARAMS if params is None else params
        lifecycle.deploy(service_dir, DeploymentSpec("bench", kind, params, targets_dir=targets))
        started.append(service_dir)
        ready = lifecycle.wait_ready(service_dir, 120, 0.05)
        if monitored:
            from aibench.files import read_json
            from aibench.monitoring.prometheus import wait_targets_up

            endpoint, _ = lifecycle.deployment(service_dir)
            wait_targets_up(read_json(run.monitoring.ready), "bench", len(endpoint.scraped_exporters), 60)
        yield service_dir, ready
    finally:
        for d in reversed(started):
            lifecycle.stop(d)


def redis_deployment(workdir: Path, monitored: bool) -> Iterator[tuple[ServiceDir, dict]]:
    return deployment(workdir, monitored)


def by_hand(ready: dict, service_dir: ServiceDir, params: dict) -> float:
    """GET ops/s of redis-benchmark run directly (not through aibench)."""
    password = lifecycle.service_secrets(service_dir)["REDIS_PASSWORD"]
    out = subprocess.run(
        command_line(ready["host"], ready["port"], password, params),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return get_ops(parse_csv(out))


def get_ops(metrics: list) -> float:
    return next(m.value for m in metrics if m.name == "throughput" and m.labels.get("command") == "GET")


def ratio_of_medians(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="aibench-bench-"))
