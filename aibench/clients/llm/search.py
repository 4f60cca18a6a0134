"""SLO search: the highest rate (open loop) or concurrency (closed loop) whose p99 TTFT and p99 TPOT
meet the SLO, found by bracketing (doubling from the low bound) then bisection, one load per trial."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aibench.clients.llm.load import Record
from aibench.clients.llm.metrics import per_request


@dataclass
class Trial:
    value: float
    records: list[Record]
    ttft_p99: float
    tpot_p99: float
    passed: bool


def meets(records: list[Record], slo_ttft_ms: float, slo_tpot_ms: float) -> tuple[float, float, bool]:
    """p99 TTFT and TPOT of the measured requests and whether both meet the SLO (no failed request)."""
    measured = [r for r in records if not r.warmup]
    metrics = [per_request(r) for r in measured if r.status == "ok"]
    if not metrics or len(metrics) < len(measured):
        return math.nan, math.nan, False
    ttft = float(np.percentile([m["ttft_ms"] for m in metrics], 99))
    tpots = [m["tpot_ms"] for m in metrics if not math.isnan(m["tpot_ms"])]
    tpot = float(np.percentile(tpots, 99)) if tpots else 0.0
    ok = (not slo_ttft_ms or ttft <= slo_ttft_ms) and (not slo_tpot_ms or tpot <= slo_tpot_ms)
    return ttft, tpot, ok


def search(
    run: Callable[[float], list[Record]],
    low: float,
    high: float,
    slo_ttft_ms: float,
    slo_tpot_ms: float,
    max_trials: int,
    integer: bool,
) -> tuple[float, list[Trial]]:
    """The highest passing value in [low, high] (0 when even ``low`` fails) and every trial run."""
    trials: list[Trial] = []

    def attempt(value: float) -> bool:
        records = run(value)
        ttft, tpot, passed = meets(records, slo_ttft_ms, slo_tpot_ms)
        trials.append(Trial(value, records, ttft, tpot, passed))
        return passed

    if not attempt(low):
        return 0.0, trials
    good, bad = low, None
    while bad is None and len(trials) < max_trials:  # bracket: double until the SLO breaks
        candidate = min(good * 2, high)
        if candidate <= good:
            return good, trials
        if attempt(candidate):
            good = candidate
            if candidate >= high:
                return good, trials
        else:
            bad = candidate
    while bad is not None and len(trials) < max_trials:  # bisect between the last pass and the first fail
        middle = (good + bad) / 2
        middle = math.floor(middle) if integer else middle
        if middle <= good or (integer and bad - good <= 1) or (not integer and (bad - good) / bad < 0.05):
            break
        if attempt(middle):
            good = middle
        else:
            bad = middle
    return good, trials
