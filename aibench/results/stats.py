"""Per-point distribution statistics of a measured quantity (numpy percentiles, NaN dropped)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from aibench.results.schema import Metric

STATS = (("mean", np.mean), ("median", np.median), ("p90", 90), ("p95", 95), ("p99", 99), ("max", np.max))


def distribution(
    name: str, values: Iterable[float], unit: str, formula: str, labels: dict[str, str] | None = None
) -> list[Metric]:
    """mean, median, p90, p95, p99 and max of ``values``; nothing when no value is defined."""
    data = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if data.size == 0:
        return []
    out = []
    for stat, how in STATS:
        value = float(np.percentile(data, how)) if isinstance(how, int) else float(how(data))
        out.append(Metric(name, stat, value, unit, labels=dict(labels or {}), formula=formula))
    return out
