"""The LLM client's side of a point's length (aibench.clients.stopping): its records' values, the
MSER-5 warm-up cut over them (``warmup_rule: mser5``) and what the summary records of both."""

from __future__ import annotations

import math
from typing import Any

from aibench.clients.stopping import MAX_DURATION, REQUESTS_DONE, TARGET_MET, Until, mser5, precision_metric
from aibench.results.formulas import formula
from aibench.results.schema import Metric

__all__ = ["Answers", "Until", "stop_metrics", "trim_warmup", "values_of"]


def values_of(records: list[Any], metric: str) -> list[float]:
    """``metric`` (ttft, tpot, e2el, in ms) of the measured requests answered so far, in send order."""
    from aibench.clients.llm.metrics import per_request

    done = [r for r in records if not r.warmup and r.status == "ok" and not math.isnan(r.end)]
    return [per_request(r)[f"{metric}_ms"] for r in sorted(done, key=lambda r: r.index)]


class Answers:
    """The until metric's values of the measured answers, gathered while the load runs: each check takes
    only the records sent since the last one and those still in flight (not the whole load again), so
    it holds up the event loop that sends the requests for no longer as the load grows."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.seen = 0
        self.pending: list[Any] = []
        self.values: list[float] = []

    def update(self, records: list[Any]) -> list[float]:
        from aibench.clients.llm.metrics import per_request

        self.pending += records[self.seen :]
        self.seen = len(records)
        waiting = []
        for record in self.pending:
            if record.warmup:
                continue
            if math.isnan(record.end):  # in flight
                waiting.append(record)
            elif record.status == "ok":
                self.values.append(per_request(record)[f"{self.metric}_ms"])
        self.pending = waiting
        return self.values


def trim_warmup(records: list[Any], rule: str, metric: str) -> int:
    """Under ``rule`` mser5, mark the measured requests before the steady state as warm-up: MSER-5 on
    ``metric`` of the answered ones in send order (a request without a value, e.g. tpot of a one-token
    answer, left out of the series), and every measured request sent up to the last one it cuts,
    failed ones too; how many it marked (0 under ``fixed``)."""
    if rule != "mser5":
        return 0
    from aibench.clients.llm.metrics import per_request

    measured = sorted((r for r in records if not r.warmup), key=lambda r: r.index)
    valued = [(r, per_request(r)[f"{metric}_ms"]) for r in measured if r.status == "ok"]
    valued = [(r, v) for r, v in valued if not math.isnan(v)]
    cut = mser5([v for _, v in valued])
    if cut == 0:
        return 0
    last = valued[cut - 1][0].index
    trimmed = [r for r in measured if r.index <= last]
    for record in trimmed:
        record.warmup = True
    return len(trimmed)


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
    sent = sum(1 for r in records if r.index >= params["warmup_requests"])
    capped = (params["requests"] and sent >= params["requests"]) or (
        params["duration_s"] and params["duration_s"] < until.max_duration_s
    )
    reason = TARGET_MET if met else REQUESTS_DONE if capped else MAX_DURATION
    return [*out, precision_metric(until, values_of(records, until.metric), reason)]
