"""The statistics vocabulary (summary.csv's `stat`) and per-point distribution statistics (numpy
percentiles, NaN dropped), each with its 95% interval (docs/metrics.md, "Uncertainty"):

- a quantile (median, p90, p95, p99): the distribution-free order-statistic interval: with B, the
  number of the n values below the true quantile q, binomial(n, q), [x(l), x(u)] holds it with
  probability F(u-1) - F(l-1) (l, u chosen from F, B's distribution function), each bound interpolated
  between two adjacent order statistics to its tail's 2.5% (Nyblom's interpolated order statistics).
  Distribution-free; a side the sample cannot bound stays open (None) and the stat is low_n;
- a mean: the studentized bootstrap (bootstrap-t) over the values, 1000 resamples, seeded (the same
  values give the same interval); it holds 94-95% on skewed latencies from 60 values, where the
  percentile bootstrap held 92% (measured, tests/unit/test_intervals.py). Beyond 20,000 values the
  normal interval from the standard error;
- a proportion (error rate, SLO attainment, the share of queries of perfect recall): Wilson's score
  interval;
- a throughput (events or tokens per second over a window): batch means over time. The window is cut
  into k equal slices (k = 10, fewer when there are fewer than 5 events per slice on average, none
  below 4 slices: low_n), each slice's own rate is one value, and the interval is Student's t on the k
  slice rates (k - 1 degrees of freedom). Their mean is the throughput itself; slices, unlike single
  requests, are close to independent in a steady load.
"""

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


#: the confidence level of every interval
CONFIDENCE = 0.95
#: bootstrap resamples of a mean, and the sample size beyond which the normal interval is used instead
RESAMPLES, BOOTSTRAP_MAX_N = 1000, 20000
#: each quantile stat's q
QUANTILES = {"median": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
#: z of the two-sided 95% normal interval
Z95 = 1.959963984540054
#: t_{0.975, df} for df = 1..30 (two-sided 95%), from the standard Student-t table
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
#: a throughput's batch-means interval: slices of its window, the fewest events per slice on
#: average, and the fewest slices an interval is given from
BATCHES, EVENTS_PER_BATCH, MIN_BATCHES = 10, 5, 4


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile t_{0.975, df}.

    A table for df <= 30; beyond, the Cornish-Fisher expansion around the normal quantile (within 1e-4
    of the exact value for df > 30, tending to 1.96)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(B <= k) for k = 0..n, B ~ binomial(n, q) (log-space pmf: no overflow for large n)."""
    k = np.arange(n + 1)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_pmf = log_factorial[n] - log_factorial[k] - log_factorial[n - k] + k * math.log(q)
    log_pmf += (n - k) * math.log1p(-q)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def quantile_interval(ordered: np.ndarray, q: float) -> tuple[float | None, float | None]:
    """The 95% order-statistic interval of the q-quantile of the sorted values ``ordered``; a side is
    None where no order statistic bounds it at that level (too few values)."""
    n = ordered.size
    cdf = _binomial_cdf(n, q)
    tail = (1 - CONFIDENCE) / 2
    # x(l) <= Q iff B >= l; Q < x(u) iff B <= u - 1 (1-based l, u): with j = l - 1 (u - 1), a bound
    # ordered[j] holds with tail F(j); between the last order statistic within the tail and the next
    # one, the bound is interpolated to the tail's exact level (Nyblom 1992), as the order statistics
    # alone hold 96-98% for p99 of 500 values where 95% is asked
    lows = np.nonzero(cdf[:n] <= tail)[0]
    highs = np.nonzero(cdf[:n] >= 1 - tail)[0]
    low = high = None
    if lows.size:
        j = int(lows[-1])
        low = _between(ordered, j, j + 1, (tail - cdf[j]) / (cdf[j + 1] - cdf[j]) if j + 1 < n else 0.0)
    if highs.size:
        j = int(highs[0])
        high = _between(ordered, j - 1, j, (1 - tail - cdf[j - 1]) / (cdf[j] - cdf[j - 1]) if j > 0 else 1.0)
    return low, high


def _between(ordered: np.ndarray, a: int, b: int, weight: float) -> float:
    """(1 - weight) x ordered[a] + weight x ordered[b], each index kept inside the sample."""
    last = ordered.size - 1
    return float((1 - weight) * ordered[min(max(a, 0), last)] + weight * ordered[min(max(b, 0), last)])


def mean_interval(data: np.ndarray) -> tuple[float | None, float | None, str]:
    """The 95% interval of the mean of ``data``, and its method (bootstrap-t, or normal past
    BOOTSTRAP_MAX_N values); None, None for fewer than three values."""
    n, mean = data.size, float(data.mean()) if data.size else math.nan
    if n < 3:
        return None, None, "bootstrap-t"
    se = float(np.std(data, ddof=1)) / math.sqrt(n)
    if n > BOOTSTRAP_MAX_N:
        return mean - Z95 * se, mean + Z95 * se, "normal"
    if se == 0:  # every value the same
        return mean, mean, "bootstrap-t"
    rng = np.random.default_rng(n)  # seeded: the same values give the same interval
    chunk = max(1, min(RESAMPLES, 2_000_000 // n))
    pivots = []
    for done in range(0, RESAMPLES, chunk):
        resamples = data[rng.integers(0, n, size=(min(chunk, RESAMPLES - done), n))]
        spread = resamples.std(axis=1, ddof=1) / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            pivots.append((resamples.mean(axis=1) - mean) / spread)
    t = np.concatenate(pivots)
    t = t[np.isfinite(t)]  # a resample of one repeated value has no spread
    tail = 100 * (1 - CONFIDENCE) / 2
    upper_t, lower_t = np.percentile(t, [100 - tail, tail])
    return mean - float(upper_t) * se, mean - float(lower_t) * se, "bootstrap-t"


def wilson_interval(successes: int, n: int) -> tuple[float | None, float | None]:
    """Wilson's 95% score interval of a proportion ``successes`` / ``n`` (None, None for n = 0)."""
    if n == 0:
        return None, None
    p, z2 = successes / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly, not 1e-17 off
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion(
    name: str, successes: int, n: int, formula: str, labels: dict[str, str] | None = None
) -> Metric:
    """``successes`` / ``n`` (stat mean, unit fraction) with its Wilson interval."""
    low, high = wilson_interval(successes, n)
    value = successes / n if n else math.nan
    return Metric(name, "mean", value, "fraction", labels=dict(labels or {}),
                  formula=with_ci(formula, "wilson"), ci_low=low, ci_high=high, n=n,
                  low_n=n == 0)  # fmt: skip


def rate_interval(
    times: Iterable[float], start: float, end: float, weights: Iterable[float] | None = None
) -> tuple[float | None, float | None, int]:
    """The 95% batch-means interval of sum(weights) / (end - start), the events at ``times`` (each of
    weight 1, or its ``weights``: tokens) in [start, end]; and the number of slices it came from
    (None, None when fewer than MIN_BATCHES: too few events or no window)."""
    at = np.asarray(list(times), dtype=float)
    weight = np.ones(at.size) if weights is None else np.asarray(list(weights), dtype=float)
    batches = min(BATCHES, at.size // EVENTS_PER_BATCH)
    if batches < MIN_BATCHES or not end > start:
        return None, None, max(batches, 0)
    width = (end - start) / batches
    slot = np.clip(((at - start) // width).astype(int), 0, batches - 1)  # the end itself: the last slice
    rates = np.bincount(slot, weights=weight, minlength=batches) / width
    half = t_quantile_975(batches - 1) * float(np.std(rates, ddof=1)) / math.sqrt(batches)
    mean = float(rates.mean())
    return max(mean - half, 0.0), mean + half, batches


def throughput(
    name: str, times: Iterable[float], start: float, end: float, unit: str, formula: str,
    weights: Iterable[float] | None = None, labels: dict[str, str] | None = None,
) -> Metric:
    """A throughput over [start, end] (stat mean): the events at ``times`` (or their ``weights``) per
    second, with its batch-means interval; ``n`` is the number of slices."""
    at = list(times)
    total = float(len(at) if weights is None else sum(weights := list(weights)))
    low, high, batches = rate_interval(at, start, end, weights)
    return Metric(name, "mean", total / max(end - start, 1e-9), unit, labels=dict(labels or {}),
                  formula=with_ci(formula, "batch-means"), ci_low=low, ci_high=high, n=batches,
                  low_n=low is None)  # fmt: skip


def with_ci(formula: str, method: str) -> str:
    """``formula`` with the method of its interval as the parameter ``ci``."""
    return f"{formula};ci={method}"


def distribution(
    name: str, values: Iterable[float], unit: str, formula: str, labels: dict[str, str] | None = None
) -> list[Metric]:
    """mean, median, p90, p95, p99 and max of ``values``, each with its 95% interval (the max: none)
    and the number of values; nothing when no value is defined."""
    data = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if data.size == 0:
        return []
    ordered = np.sort(data)
    out = []
    for stat, how in STATS:
        value = float(np.percentile(data, how)) if isinstance(how, int) else float(how(data))
        if stat == "mean":
            low, high, method = mean_interval(data)
        elif stat in QUANTILES:
            (low, high), method = quantile_interval(ordered, QUANTILES[stat]), "order-statistic"
        else:  # the max: an extreme of the sample, no interval
            low = high = method = None
        out.append(Metric(
            name, stat, value, unit, labels=dict(labels or {}),
            formula=with_ci(formula, method) if method else formula, ci_low=low, ci_high=high,
            n=int(data.size), low_n=method is not None and (low is None or high is None),
        ))  # fmt: skip
    return out
