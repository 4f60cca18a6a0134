"""redis-benchmark: Redis's own closed-loop load generator, its CSV parsed into the common schema."""

from __future__ import annotations

import csv
import io
import subprocess
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.base import ClientKind, run_tool
from aibench.clients.presentation import Panel, Presentation, Stats
from aibench.errors import ClientError
from aibench.results.schema import Metric, PointResult
from aibench.secrets import mask_argv
from aibench.services.redis import BENCH_USER

#: the benchmark account's password (aibench.services.redis BENCH_USER), and the `default` user's
#: password, used only against a server aibench did not deploy (which has no such account)
BENCH_SECRET, DEFAULT_SECRET = "REDIS_BENCH_PASSWORD", "REDIS_PASSWORD"

#: redis-benchmark's latency columns -> the stat each is (its p50 is the median: one stat vocabulary)
LATENCY_COLUMNS = {
    "avg_latency_ms": "mean",
    "min_latency_ms": "min",
    "p50_latency_ms": "median",
    "p95_latency_ms": "p95",
    "p99_latency_ms": "p99",
    "max_latency_ms": "max",
}
#: formula ids (docs/metrics.md): redis-benchmark's own numbers, column by column
THROUGHPUT, LATENCY = "redis-benchmark.throughput", "redis-benchmark.latency"


def parse_csv(text: str) -> list[Metric]:
    """Metrics from ``redis-benchmark --csv`` output (one row per test)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "rps" not in rows[0]:
        raise ValueError(f"not redis-benchmark CSV output: {text[:200]!r}")
    metrics: list[Metric] = []
    for row in rows:
        command = row["test"]
        labels = {"command": command}
        metrics.append(Metric("throughput", "mean", float(row["rps"]), "ops/s", labels, THROUGHPUT))
        for column, stat in LATENCY_COLUMNS.items():
            if column in row:
                metrics.append(Metric("latency", stat, float(row[column]), "ms", labels, LATENCY))
    return metrics


def command_line(
    host: str, port: int, password: str | None, params: dict[str, Any], user: str | None = None
) -> list[str]:
    argv = ["redis-benchmark", "-h", host, "-p", str(port)]
    if user:
        argv += ["--user", user]  # ACL-style `AUTH user pass` (src/redis-benchmark.c: "Needs -a")
    if password:
        # on the command line, hence in ps: redis-benchmark 7.0 has no other way to take it (see
        # aibench.services.redis BENCH_USER), so the password given here is the benchmark account's
        argv += ["-a", password]
    argv += [
        "-c",
        str(params["clients"]),
        "-n",
        str(params["requests"]),
        "-d",
        str(params["data_size"]),
        "-P",
        str(params["pipeline"]),
        "-t",
        params["tests"],
        "--csv",
    ]
    if params["keyspace"]:
        argv += ["-r", str(params["keyspace"])]
    if params["threads"]:
        argv += ["--threads", str(params["threads"])]
    return argv


def credentials(secrets: dict[str, str]) -> tuple[str | None, str | None]:
    """(user, password) the load logs in with: the benchmark account when the secrets hold it (every
    Redis aibench deploys), else `default` with REDIS_PASSWORD, for a server run by someone else."""
    if secrets.get(BENCH_SECRET):
        return BENCH_USER, secrets[BENCH_SECRET]
    return None, secrets.get(DEFAULT_SECRET)


def version() -> str:
    out = subprocess.run(["redis-benchmark", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


@CLIENTS.register
class RedisBenchmark(ClientKind):
    name = "redis-benchmark"
    tools = ("redis-benchmark",)
    params_schema = "kinds/redis-benchmark"
    services = ("redis",)
    secret_names = (BENCH_SECRET, DEFAULT_SECRET)
    presentation = Presentation(
        throughput="throughput",
        panels=(Panel("throughput", ("mean",), "Throughput"), Panel("latency", ("p99",), "p99 latency")),
        headlines=(Stats("throughput", ("mean",)), Stats("latency", ("median", "p99"))),
    )

    def run(
        self,
        endpoint: dict[str, Any],
        secrets: dict[str, str],
        params: dict[str, Any],
        timeout_s: float,
    ) -> PointResult:
        user, password = credentials(secrets)
        argv = command_line(endpoint["host"], int(endpoint["port"]), password, params, user)
        shown = " ".join(mask_argv(argv, [password or ""]))
        out = run_tool(argv, timeout_s, [password or ""])
        try:
            metrics = parse_csv(out)
        except ValueError as exc:
            raise ClientError(f"{exc}; command: {shown}") from None
        return PointResult(
            metrics=metrics,
            raw_csv=out.encode(),
            tool={"name": "redis-benchmark", "version": version(), "command": shown},
        )
