"""sysbench OLTP against a MySQL-protocol service: `prepare` as its own step, then `run` per point.

Connection options, the password among them, go to sysbench through a 0600 --config-file, never
the command line. `rate` > 0 makes it an open loop (sysbench --rate). Its text report is parsed into
the common schema: transactions/s, queries/s by kind, latency avg/p95/max (ms), errors, reconnects.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aibench.clients import CLIENTS, progress
from aibench.clients.base import ClientKind, run_tool
from aibench.clients.presentation import Panel, Presentation, Stats
from aibench.errors import ClientError
from aibench.files import write_text
from aibench.results.schema import Metric, PointResult

_COUNT = r"\s+(\d+)\s+\(([\d.]+) per sec\.\)"


_INTERVAL = re.compile(
    r"\[\s*(?P<t>[\d.]+)s\s*\] thds: (?P<threads>\d+) tps: (?P<tps>[\d.]+) qps: (?P<qps>[\d.]+) "
    r"\(r/w/o: (?P<r>[\d.]+)/(?P<w>[\d.]+)/(?P<o>[\d.]+)\) lat \(ms,95%\): (?P<p95>[\d.]+) "
    r"err/s: (?P<err>[\d.]+) reconn/s: (?P<reconn>[\d.]+)"
)
INTERVAL_COLUMNS = ["time_s", "threads", "tps", "qps", "reads_per_s", "writes_per_s", "other_per_s",
                    "latency_p95_ms", "errors_per_s", "reconnects_per_s"]  # fmt: skip


def counting(seconds: float) -> Callable[[str], None]:
    """The load's progress from sysbench's own per-second report lines (--report-interval=1): each
    adds that second's transactions (tps x 1 s) and errors to the count; a second without any is no
    completion (so a stalled database shows as stalled)."""
    tracker = progress.start(None, seconds, unit="transactions")

    def line(text: str) -> None:
        if (m := _INTERVAL.search(text)) is None:
            return
        done, failed = round(float(m["tps"])), round(float(m["err"]))
        if done or failed:
            tracker.done += done + failed
            tracker.failed += failed
            tracker.last = time.monotonic()

    return line


def intervals_csv(text: str) -> bytes:
    """sysbench's per-second report lines (--report-interval=1) as CSV: the point's raw time series."""
    lines = [",".join(INTERVAL_COLUMNS)]
    for m in _INTERVAL.finditer(text):
        lines.append(
            ",".join(
                m.group(k) for k in ("t", "threads", "tps", "qps", "r", "w", "o", "p95", "err", "reconn")
            )
        )
    return ("\n".join(lines) + "\n").encode()


def parse_report(text: str) -> list[Metric]:
    """Metrics from sysbench's run report; each metric's formula id (docs/metrics.md) is
    ``sysbench.<name>``: sysbench's own number, from the report line named there."""
    metrics: list[Metric] = []

    def grab(pattern: str) -> re.Match | None:
        return re.search(pattern, text)

    for line, name in (("transactions", "transactions"), ("queries", "queries"),
                       ("ignored errors", "errors"), ("reconnects", "reconnects")):  # fmt: skip
        m = grab(rf"{line}:{_COUNT}")
        if m is None:
            raise ValueError(f"not a sysbench run report (no '{line}:' line)")
        metrics.append(Metric(name, "count", float(m.group(1)), name, formula=f"sysbench.{name}"))
        per_s = f"{name}_per_s"
        metrics.append(Metric(per_s, "mean", float(m.group(2)), f"{name}/s", formula=f"sysbench.{per_s}"))
    for kind in ("read", "write", "other"):
        m = grab(rf"\s{kind}:\s+(\d+)")
        if m:
            metrics.append(
                Metric("queries", "count", float(m.group(1)), "queries", {"kind": kind}, "sysbench.queries")
            )
    for line, stat in (("avg", "mean"), ("min", "min"), ("max", "max"), ("95th percentile", "p95")):
        m = grab(rf"{line}:\s+([\d.]+)")
        if m:
            metrics.append(Metric("latency", stat, float(m.group(1)), "ms", formula="sysbench.latency"))
    return metrics


@CLIENTS.register
class Sysbench(ClientKind):
    name = "sysbench"
    tools = ("sysbench",)
    params_schema = "kinds/sysbench"
    services = ("mysql",)
    secret_names = ("MYSQL_PASSWORD", "MYSQL_USER", "MYSQL_DATABASE")
    #: what `prepare` depends on: these cannot be swept (one prepared data set per deployment)
    prepare_params = ("test", "tables", "table_size")
    duration_param = "time_s"
    presentation = Presentation(
        throughput="transactions_per_s",
        panels=(
            Panel("transactions_per_s", ("mean",), "Transactions"),
            Panel("latency", ("mean", "p95"), "Latency"),
        ),
        headlines=(Stats("transactions_per_s", ("mean",)), Stats("latency", ("mean", "p95"))),
    )

    def own_duration_s(self, params: dict[str, Any]) -> float | None:
        return float(params["time_s"])

    @staticmethod
    def _config(
        endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], directory: Path
    ) -> Path:
        lines = [
            "db-driver=mysql", f"mysql-host={endpoint['host']}", f"mysql-port={endpoint['port']}",
            f"mysql-user={secrets.get('MYSQL_USER', 'bench')}", f"mysql-password={secrets['MYSQL_PASSWORD']}",
            f"mysql-db={secrets.get('MYSQL_DATABASE', 'sbtest')}", f"tables={params['tables']}",
            f"table-size={params['table_size']}",
        ]  # fmt: skip
        path = directory / "sysbench.cfg"
        write_text(path, "\n".join(lines) + "\n", perms=0o600)
        return path

    def _sysbench(
        self, args: list[str], endpoint: dict, secrets: dict, params: dict, timeout_s: float,
        on_line: Callable[[str], None] | None = None,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="aibench-sysbench-") as tmp:
            config = self._config(endpoint, secrets, params, Path(tmp))
            argv = ["sysbench", f"--config-file={config}", params["test"], *args]
            return run_tool(argv, timeout_s, [secrets["MYSQL_PASSWORD"]], on_line)

    def prepare(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> str:
        """Create and fill the test tables (once per deployment)."""
        return self._sysbench(
            ["prepare", f"--threads={min(params['tables'], 8)}"], endpoint, secrets, params, timeout_s
        )

    def run(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> PointResult:
        args = ["run", f"--threads={params['threads']}", f"--time={params['time_s']}", "--report-interval=1"]
        if params["rate"]:
            args.append(f"--rate={params['rate']}")
        out = self._sysbench(args, endpoint, secrets, params, timeout_s, counting(params["time_s"]))
        try:
            metrics = parse_report(out)
        except ValueError as exc:
            raise ClientError(str(exc)) from None
        return PointResult(
            metrics=metrics,
            raw_csv=intervals_csv(out),
            tool={"name": "sysbench", "test": params["test"], "report": out, "version": subprocess.run(
                ["sysbench", "--version"], capture_output=True, text=True, check=False).stdout.strip()},
        )  # fmt: skip
