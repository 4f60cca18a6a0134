"""Efficiency metrics of a point: its headline throughput per CPU core and per GPU of the service.

<throughput>_per_core = the client kind's headline throughput (its presentation's ``throughput``, stat
mean) / mean CPU cores the service's processes used over the window (process exporter);
<throughput>_per_gpu = that throughput / GPUs the GPU exporter saw (in a SLURM job with device
constraints: the job's GPUs). Nothing is reported when a divisor is missing or 0. Formula ids
``efficiency.per_core`` and ``efficiency.per_gpu`` (docs/metrics.md, "Efficiency").
"""

from __future__ import annotations

from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.presentation import presentation_of
from aibench.results.formulas import formula

DIVISORS = (("per_core", "cpu_cores", "core"), ("per_gpu", "gpu_count", "GPU"))


def efficiency_rows(client: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (metric, stat, value, unit, source, formula, labels...) derived from a point's ``rows``;
    none for a client kind this version does not know (a run from elsewhere)."""
    if client not in CLIENTS.names():
        return []
    metric = presentation_of(client).throughput
    means = {r["metric"]: r["value"] for r in rows if r["source"] == "prometheus" and r["stat"] == "mean"}
    out = []
    for row in rows:
        if row["source"] != "client" or row["metric"] != metric or row["stat"] != "mean":
            continue
        for suffix, series, per in DIVISORS:
            divisor = means.get(series)
            if not divisor:
                continue
            out.append({**row, "metric": f"{metric}_{suffix}", "value": row["value"] / divisor,
                        "unit": f"{row['unit']} per {per}", "source": "derived",
                        "formula": formula(f"efficiency.{suffix}", throughput=metric)})  # fmt: skip
    return out
