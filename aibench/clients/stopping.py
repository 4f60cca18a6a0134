"""How long a point runs when its recipe says ``until`` (the LLM and Chroma clients): a precision target.

``until: {metric: ttft, stat: p99, rel_ci: 0.05, min_requests: 400, max_duration_s: 300}`` runs the
load until the 95% interval of that statistic, computed as the summary computes it (order statistics
for a quantile, the bootstrap-t for a mean: aibench.results.stats), is no wider than ``rel_ci`` of the
estimate on either side ((high - low) / 2 / |estimate| <= rel_ci), over at least ``min_requests``
measured answers; or until ``max_duration_s`` (or the load's own size, where set) ends it first. The
check runs every CHECK_S on the answers so far; requests in flight when it is met still count. The
point records why it stopped and the precision it reached (``load.until`` in docs/metrics.md).

The warm-up rule ``mser5`` (the LLM client's ``warmup_rule``) truncates the measured requests before
the steady state, as MSER-5 finds it (White 1997; Robinson 2007): the series in send order, in batches
of 5, truncated where the batch means' standard error of the mean of what remains is smallest, over the
first half at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aibench.results.formulas import formula
from aibench.results.schema import Metric
from aibench.results.stats import QUANTILES, Z95, mean_interval, quantile_interval

#: seconds between two checks of the precision target
CHECK_S = 0.5
#: MSER's batch size, and the largest share of the series it may truncate
MSER_BATCH, MSER_MAX_SHARE = 5, 0.5
#: a stop's reasons, as recorded
TARGET_MET, MAX_DURATION, REQUESTS_DONE = "target_met", "max_duration_s", "requests_or_duration_s"


@dataclass(frozen=True)
class Until:
    metric: str
    stat: str
    rel_ci: float
    min_requests: int
    max_duration_s: float

    @classmethod
    def of(cls, params: dict[str, Any]) -> Until | None:
        until = params.get("until")
        if not until:
            return None
        return cls(until["metric"], until["stat"], float(until["rel_ci"]), int(until["min_requests"]),
                   float(until["max_duration_s"]))  # fmt: skip

    def precision(self, values: list[float], checking: bool = False) -> float | None:
        """The relative half-width of the statistic's 95% interval over ``values`` (None: unbounded).
        While ``checking`` (inside the running load, every CHECK_S), a mean's interval is the normal
        one (mean ± 1.96 standard errors), not the bootstrap-t the summary reports: 1,000 resamples of
        thousands of values would hold up the event loop that sends the requests."""
        data = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
        if data.size < 3:
            return None
        if self.stat == "mean":
            estimate = float(data.mean())
            if checking:
                half = Z95 * float(np.std(data, ddof=1)) / math.sqrt(data.size)
                low, high = estimate - half, estimate + half
            else:
                low, high, _ = mean_interval(data)
        else:
            low, high = quantile_interval(np.sort(data), QUANTILES[self.stat])
            estimate = float(np.percentile(data, 100 * QUANTILES[self.stat]))
        if low is None or high is None or estimate == 0:
            return None
        return (high - low) / 2 / abs(estimate)

    def met(self, values: list[float]) -> bool:
        if len(values) < self.min_requests:
            return False
        reached = self.precision(values, checking=True)
        return reached is not None and reached <= self.rel_ci


def mser5(series: list[float]) -> int:
    """How many leading values MSER-5 truncates from ``series`` (a multiple of 5; 0 when it finds no
    transient or the series is shorter than two batches)."""
    data = np.asarray([v for v in series if not math.isnan(v)], dtype=float)
    batches = data.size // MSER_BATCH
    if batches < 2:
        return 0
    means = data[: batches * MSER_BATCH].reshape(batches, MSER_BATCH).mean(axis=1)
    best, cut = math.inf, 0
    for d in range(int(batches * MSER_MAX_SHARE) + 1):
        rest = means[d:]
        if rest.size < 2:
            break
        statistic = float(np.var(rest)) / rest.size  # (sum of squared deviations / n) / n
        if statistic < best:
            best, cut = statistic, d
    return cut * MSER_BATCH




def precision_metric(until: Until, values: list[float], reason: str) -> Metric:
    """The point's record of its precision target: the relative half-width reached over ``values`` (the
    measured answers' metric, as the summary reports them) and why the load stopped."""
    reached = until.precision(values)
    shown = formula("load.until", metric=until.metric, stat=until.stat, rel_ci=f"{until.rel_ci:g}",
                    stopped=reason)  # fmt: skip
    return Metric("until_precision", "mean", math.nan if reached is None else reached, "fraction",
                  formula=shown, n=len(values), low_n=reached is None)  # fmt: skip
