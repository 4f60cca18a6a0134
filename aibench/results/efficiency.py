"""Efficiency metrics of a point: its headline throughput per CPU core and per GPU of the service.

throughput_per_core = client throughput (mean) / mean CPU cores the service's processes used over the
window (process exporter); throughput_per_gpu = client throughput / GPUs the GPU exporter saw (in a
SLURM job with device constraints: the job's GPUs). Nothing is reported when a divisor is missing or 0.
"""

from __future__ import annotations

from typing import Any

#: client kind -> its headline throughput metric (stat mean)
THROUGHPUT = {
    "redis-benchmark": "throughput",
    "llm": "output_token_throughput",
    "sysbench": "transactions_per_s",
    "chroma": "queries_per_s",
}
DIVISORS = (("per_core", "cpu_cores", "core"), ("per_gpu", "gpu_count", "GPU"))


def efficiency_rows(client: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (metric, stat, value, unit, source, formula, labels...) derived from a point's ``rows``."""
    metric = THROUGHPUT.get(client)
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
                        "formula": f"{metric}(mean)/mean({series})"})  # fmt: skip
    return out
