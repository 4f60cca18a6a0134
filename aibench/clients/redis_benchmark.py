"""redis-benchmark: Redis's own closed-loop load generator, its CSV parsed into the common schema."""

from __future__ import annotations

import csv
import io
import subprocess
import threading
import time
from typing import Any

import redis

from aibench.clients import CLIENTS, progress
from aibench.clients.base import ClientKind, run_tool, share_of
from aibench.clients.presentation import Panel, Presentation, Stats
from aibench.errors import ClientError
from aibench.results.formulas import formula
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


def _rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "rps" not in rows[0]:
        raise ValueError(f"not redis-benchmark CSV output: {text[:200]!r}")
    return rows


def parse_csv(text: str, node: int | None = None) -> list[Metric]:
    """Metrics from ``redis-benchmark --csv`` output (one row per test); with ``node``, one client
    node's of a point loaded from several (labelled ``node``)."""
    metrics: list[Metric] = []
    for row in _rows(text):
        command = row["test"]
        labels = {"command": command} if node is None else {"command": command, "node": str(node)}
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


class CommandCounter:
    """The load's progress while redis-benchmark runs, which prints none with --csv (tried: nothing on
    its stdout before the end): the server's own count of commands processed (INFO stats
    total_commands_processed, read every POLL_S with the load's account), less its count when the load
    began and the INFO calls themselves; of the requests x tests planned. Other clients of the server
    (its exporter's scrapes) count too, so it is an estimate: progress, not a measurement. A server that
    cannot be asked leaves the progress at time only."""

    POLL_S = 1.0

    def __init__(self, host: str, port: int, user: str | None, password: str | None, planned: int) -> None:
        self.client = redis.Redis(host=host, port=port, username=user, password=password, socket_timeout=5,
                                  socket_connect_timeout=5)  # fmt: skip
        self.planned = planned
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="aibench-redis-progress", daemon=True)
        self.tracker: progress.Progress | None = None
        self.base = self.asked = 0

    def _count(self) -> int:
        return int(self.client.info("stats")["total_commands_processed"])

    def _poll(self) -> None:
        try:
            self.base, self.asked = self._count(), 1
        except redis.RedisError:  # the tool still runs; its progress is its time only
            progress.start(None, None, counted=False)
            return
        self.tracker = progress.start(self.planned, None, unit="commands")
        while not self.stop.wait(self.POLL_S):
            self._update()

    def _update(self) -> None:
        """Read the server's count once more into the tracker."""
        if self.tracker is None:
            return
        try:
            done = self._count() - self.base - self.asked
        except redis.RedisError:
            return
        self.asked += 1
        if done > self.tracker.done:
            self.tracker.done, self.tracker.last = done, time.monotonic()

    def __enter__(self) -> CommandCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self._update()  # the count at the end, not a second old
        self.client.close()


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

    multi_node = True

    def run(
        self,
        endpoint: dict[str, Any],
        secrets: dict[str, str],
        params: dict[str, Any],
        timeout_s: float,
    ) -> PointResult:
        out, shown = self._benchmark(endpoint, secrets, params, timeout_s)
        try:
            metrics = parse_csv(out)
        except ValueError as exc:
            raise ClientError(f"{exc}; command: {shown}") from None
        return PointResult(
            metrics=metrics,
            raw_csv=out.encode(),
            tool={"name": "redis-benchmark", "version": version(), "command": shown},
        )

    @staticmethod
    def _benchmark(
        endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> tuple[str, str]:
        """redis-benchmark's CSV output, and its command line with the password masked."""
        user, password = credentials(secrets)
        argv = command_line(endpoint["host"], int(endpoint["port"]), password, params, user)
        shown = " ".join(mask_argv(argv, [password or ""]))
        planned = params["requests"] * len([t for t in str(params["tests"]).split(",") if t.strip()])
        with CommandCounter(endpoint["host"], int(endpoint["port"]), user, password, planned):
            return run_tool(argv, timeout_s, [password or ""], tracked=True), shown

    # -- a point's load from several client nodes (aibench.clients.fanout)

    def nodes_problem(self, params: dict[str, Any], nodes: int) -> tuple[tuple[str, ...], str] | None:
        for name in ("clients", "requests"):
            if params[name] < nodes:
                return (name,), f"{params[name]} {name} cannot be split over {nodes} client nodes"
        return None

    def share(self, params: dict[str, Any], rank: int, nodes: int) -> dict[str, Any]:
        """Connections and requests split as evenly as they go (the first nodes take the remainder)."""
        def part(total: int) -> int:
            return share_of(total, rank, nodes)

        return {**params, "clients": part(params["clients"]), "requests": part(params["requests"])}

    def run_share(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        started = time.time()
        out, shown = self._benchmark(endpoint, secrets, params, timeout_s)
        _rows(out)  # a node whose output is not the tool's CSV fails here, naming itself
        return {"origin_wall": started, "csv": out, "command": shown, "version": version()}

    def merge(self, parts: list[dict[str, Any]], params: dict[str, Any]) -> PointResult:
        """redis-benchmark gives percentiles per run only, from no per-request records: each node's
        numbers are reported as its own (label ``node``), never averaged; the throughputs, which add up
        over nodes loading at once, are also summed (label ``node: sum``, formula ``;nodes=sum``)."""
        metrics: list[Metric] = []
        totals: dict[str, float] = {}
        raw = io.StringIO()
        writer = csv.writer(raw, quoting=csv.QUOTE_NONNUMERIC)
        for part in sorted(parts, key=lambda p: p["rank"]):
            metrics += parse_csv(part["csv"], node=part["rank"])
            for row in _rows(part["csv"]):
                totals[row["test"]] = totals.get(row["test"], 0.0) + float(row["rps"])
                if not raw.tell():
                    writer.writerow(["node", *row])
                writer.writerow([part["rank"], *row.values()])
        for command, total in totals.items():
            labels = {"command": command, "node": "sum"}
            summed = formula(THROUGHPUT, nodes="sum")
            metrics.append(Metric("throughput", "mean", total, "ops/s", labels, summed))
        tool = {"name": "redis-benchmark", "version": parts[0]["version"], "command": parts[0]["command"],
                "client_nodes": len(parts)}  # fmt: skip
        return PointResult(metrics=metrics, raw_csv=raw.getvalue().encode(), tool=tool)
