"""How long an LLM point runs when its recipe says ``until``: a precision target, and the warm-up rule.

``until: {metric: ttft, stat: p99, rel_ci: 0.05, min_requests: 400, max_duration_s: 300}`` runs the
load until the 95% interval of that statistic, computed as the summary computes it (order statistics
for a quantile, the bootstrap-t for a mean: aibench.results.stats), is no wider than ``rel_ci`` of the
estimate on either side ((high - low) / 2 / |estimate| <= rel_ci), over at least ``min_requests``
measured answers; or until ``max_duration_s`` (or the load's own ``requests``/``duration_s``, where
set) ends it first. The check runs every CHECK_S on the answers so far; requests in flight when it is
met still count. The point records why it stopped and the precision it reached
(``load.until`` in docs/metrics.md).

Warm-up: ``warmup_rule: fixed`` excludes the first ``warmup_requests``; ``mser5`` excludes besides the
measured requests before the steady state, as MSER-5 finds it (White 1997; Robinson 2007): the series
of the until metric (else TTFT) in send order, in batches of 5, truncated where the batch means'
standard error of the mean of what remains is smallest, over the first half at most.
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


def values_of(records: list[Any], metric: str) -> list[float]:
    """``metric`` (ttft, tpot, e2el, in ms) of the measured requests answered so far, in send order."""
    from aibench.clients.llm.metrics import per_request

    done = [r for r in records if not r.warmup and r.status == "ok" and not math.isnan(r.end)]
    return [per_request(r)[f"{metric}_ms"] for r in sorted(done, key=lambda r: r.index)]


def trim_warmup(records: list[Any], rule: str, metric: str) -> int:
    """Under ``rule`` mser5, mark the measured requests before the steady state as warm-up (MSER-5 on
    ``metric`` in send order); how many it marked (0 under ``fixed``)."""
    if rule != "mser5":
        return 0
    measured = sorted((r for r in records if not r.warmup and r.status == "ok"), key=lambda r: r.index)
    from aibench.clients.llm.metrics import per_request

    cut = mser5([per_request(r)[f"{metric}_ms"] for r in measured])
    for record in measured[:cut]:
        record.warmup = True
    return cut


def stop_metrics(
    records: list[Any], params: dict[str, Any], until: Until | None, met: bool, trimmed: int
) -> list[Metric]:
    """What the summary records of the point's length: the warm-up excluded (by which rule), and under
    ``until`` the precision reached over the measured requests reported and why the load stopped."""
    excluded = params["warmup_requests"] + trimmed
    out = [Metric("warmup_excluded", "count", float(excluded), "requests",
                  formula=formula("load.warmup", rule=params["warmup_rule"]))]  # fmt: skip
    if until is None:
        return out
    values = values_of(records, until.metric)
    reached = until.precision(values)
    sent = sum(1 for r in records if r.index >= params["warmup_requests"])
    capped = (params["requests"] and sent >= params["requests"]) or (
        params["duration_s"] and params["duration_s"] < until.max_duration_s
    )
    reason = TARGET_MET if met else REQUESTS_DONE if capped else MAX_DURATION
    shown = formula("load.until", metric=until.metric, stat=until.stat, rel_ci=f"{until.rel_ci:g}",
                    stopped=reason)
    out.append(Metric("until_precision", "mean", math.nan if reached is None else reached, "fraction",
                      formula=shown, n=len(values), low_n=reached is None))  # fmt: skip
    return out
