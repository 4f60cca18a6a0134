"""The statistics vocabulary (summary.csv's `stat`) and per-point distribution statistics (numpy
percentiles, NaN dropped)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from aibench.results.schema import Metric

if TYPE_CHECKING:
    import pandas as pd

STATS = (("mean", np.mean), ("median", np.median), ("p90", 90), ("p95", 95), ("p99", 99), ("max", np.max))
#: every stat a metric record may carry, in the order tables list them: the distribution's, then the
#: tools' own extremes and counts
VOCABULARY = ("mean", "median", "p90", "p95", "p99", "min", "max", "count")
#: stat names of runs before results schema 2.0 -> today's: redis-benchmark's median was named `p50`
LEGACY_STATS = {"p50": "median"}


def current_stats(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a tidy table, maybe of an older run) with every stat in today's vocabulary.

    The one place an old stat name is mapped (docs/results-schema.md, "Changes"): `aibench compare`, the
    figures and the paper tables read through it; summary.csv keeps what each point recorded."""
    return table.assign(stat=table["stat"].replace(LEGACY_STATS))


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
