"""Aggregation of per-point results into one tidy long table (results/summary.csv)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from aibench.files import read_json
from aibench.monitoring.server_metrics import server_rows
from aibench.monitoring.server_series import is_server_series
from aibench.results.efficiency import efficiency_rows
from aibench.results.formulas import prometheus_window
from aibench.rundir import PointDir

BASE_COLUMNS = [
    "experiment", "point", "repeat", "status", "service", "client",
    "metric", "stat", "value", "ci_low", "ci_high", "n", "low_n", "unit", "source", "formula",
]


#: a metric's interval, sample size and small-sample flag (results schema 2.1)
INTERVAL_COLUMNS = ("ci_low", "ci_high", "n", "low_n")

#: columns of a service sweep's points: the deployment's id and each service value it set
DEPLOYMENT, SERVICE_PREFIX = "deployment", "service."


def deployment_columns(columns: Iterable[str]) -> list[str]:
    """The deployment column and the service-sweep value columns among ``columns``, in table order."""
    columns = list(columns)
    swept = sorted(c for c in columns if c.startswith(SERVICE_PREFIX))
    return ([DEPLOYMENT] if DEPLOYMENT in columns else []) + swept


def _unit(series: str) -> str:
    for suffix, unit in (("_cores", "cores"), ("_bytes", "bytes"), ("_per_s", "1/s"), ("_pct", "%"),
                         ("_w", "W"), ("_count", "count")):  # fmt: skip
        if series.endswith(suffix):
            return unit
    return ""


def resource_rows(metrics_csv: Path) -> list[dict[str, Any]]:
    """Mean and max of each resource series over the point's window, and the server's own figures
    (aibench.monitoring.server_metrics) from the series its /metrics gave."""
    if not metrics_csv.exists() or metrics_csv.stat().st_size == 0:
        return []
    frame = pd.read_csv(metrics_csv)
    if frame.empty:
        return []
    server = frame["series"].map(is_server_series)
    rows = server_rows(frame[server])
    for series, values in frame[~server].groupby("series")["value"]:
        for stat, value in (("mean", values.mean()), ("max", values.max())):
            rows.append(
                {"metric": series, "stat": stat, "value": float(value), "unit": _unit(str(series)),
                 "source": "prometheus", "formula": prometheus_window(series)}
            )
    return rows


def point_rows(summary: dict[str, Any], metrics_csv: Path | None = None) -> list[dict[str, Any]]:
    common = {
        "experiment": summary["experiment"],
        "point": summary["point"],
        "repeat": summary["repeat"],
        "status": summary["status"],
        "service": summary["service"].get("kind"),
        "client": summary["client"].get("kind"),
        **{f"param_{k}": v for k, v in summary["params"].items()},
    }
    if summary.get("deployment") is not None:  # a service sweep's: its id and the service values it set
        common[DEPLOYMENT] = summary["deployment"]
        common.update({f"{SERVICE_PREFIX}{k}": v for k, v in summary["service"].get("swept", {}).items()})
    rows = []
    for metric in summary["metrics"]:
        rows.append(
            {**common, "metric": metric["name"], "stat": metric["stat"], "value": metric["value"],
             "ci_low": metric.get("ci_low"), "ci_high": metric.get("ci_high"), "n": metric.get("n"),
             "low_n": metric.get("low_n"), "unit": metric["unit"], "source": "client",
             "formula": metric.get("formula", ""), **metric.get("labels", {})}
        )
    if metrics_csv is not None:
        rows += [{**common, **r} for r in resource_rows(metrics_csv)]
        rows += efficiency_rows(common["client"], rows)
    return rows


def tidy_table(point_dirs: Iterable[str | os.PathLike[str]], resources: bool = True) -> pd.DataFrame:
    """One row per (point, metric, stat, labels) over all points; params as param_* columns.

    With ``resources`` false only the client's own metrics are read (no Prometheus windows)."""
    rows: list[dict[str, Any]] = []
    for directory in point_dirs:
        point = PointDir(directory)
        rows += point_rows(read_json(point.summary), point.metrics if resources else None)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    deployed = deployment_columns(frame.columns)
    labels = sorted(c for c in frame.columns if c not in BASE_COLUMNS and c not in params + deployed)
    frame["n"] = pd.to_numeric(frame["n"]).astype("Int64")  # a count, empty where no sample size is known
    # the interval columns only where some point recorded them: a run before results schema 2.1 gives
    # back its own table, column for column
    recorded = [c for c in INTERVAL_COLUMNS if frame[c].notna().any()]
    base = [c for c in BASE_COLUMNS if c not in INTERVAL_COLUMNS or c in recorded]
    return frame[base[:6] + deployed + params + labels + base[6:]]


def write_summary_csv(
    point_dirs: Iterable[str | os.PathLike[str]], output: str | os.PathLike[str]
) -> pd.DataFrame:
    """Aggregate the points into ``output`` (written atomically); returns the table."""
    from aibench.files import atomic_open

    table = tidy_table(point_dirs)
    with atomic_open(output, "w") as handle:
        table.to_csv(handle, index=False)
    return table
