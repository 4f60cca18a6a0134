"""How long an LLM point runs (aibench.clients.llm.stopping): the precision target's arithmetic, and
MSER-5's warm-up cut on series with a known transient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aibench.clients.llm import load, stopping
from aibench.recipes.validation import validate


def until(**overrides: object) -> stopping.Until:
    spec = {"metric": "ttft", "stat": "median", "rel_ci": 0.05, "min_requests": 20, "max_duration_s": 10,
            **overrides}  # fmt: skip
    return stopping.Until.of({"until": spec})  # type: ignore[return-value]


def test_the_target_is_the_relative_half_width_of_the_stats_interval() -> None:
    rng = np.random.default_rng(1)
    tight, loose = list(100 + rng.normal(0, 1, 200)), list(100 + rng.normal(0, 40, 200))
    assert until().precision(tight) < 0.01 < until().precision(loose)
    assert until().met(tight) and not until().met(loose)
    assert not until().met(tight[:19])  # fewer than min_requests
    # a p99 from 200 values has no upper bound yet (368 needed): never met, precision unknown
    assert until(stat="p99").precision(tight) is None and not until(stat="p99").met(tight)
    mean = until(stat="mean").precision(tight)
    assert mean == pytest.approx(1.96 * np.std(tight, ddof=1) / math.sqrt(200) / np.mean(tight), rel=0.15)


@pytest.mark.parametrize(("transient", "n"), [(0, 400), (50, 400), (120, 600)])
def test_mser5_cuts_the_transient(transient: int, n: int) -> None:
    """A queue filling up: values falling from 300 to the steady 100 over ``transient`` requests."""
    rng = np.random.default_rng(7)
    steady = 100 + rng.normal(0, 5, n)
    ramp = np.linspace(300, 100, transient) if transient else np.array([])
    series = np.concatenate([ramp + rng.normal(0, 5, transient), steady])
    cut = stopping.mser5(list(series))
    assert cut % 5 == 0 and transient - 25 <= cut <= transient + 25, cut
    assert stopping.mser5([1.0] * 7) == 0  # one batch: nothing to compare


def test_mser5_marks_the_cut_requests_as_warmup_and_the_summary_says_how_many() -> None:
    rng, records = np.random.default_rng(3), []
    for index in range(200):
        ttft = (0.5 if index < 21 else 0.05) + rng.normal(0, 0.005)  # the first 20 measured ones are slow
        records.append(load.Record(index, index == 0, intended=float(index), chunks=[index + ttft],
                                   end=index + ttft + 0.1))  # fmt: skip
    params = validate({"requests": 199, "warmup_requests": 1, "warmup_rule": "mser5"}, "kinds/llm", "t")
    cut = stopping.trim_warmup(records, "mser5", "ttft")
    assert 20 <= cut <= 25 and sum(r.warmup for r in records) == 1 + cut
    (excluded,) = stopping.stop_metrics(records, params, None, False, cut)
    assert (excluded.name, excluded.value) == ("warmup_excluded", 1.0 + cut)
    assert excluded.formula == "load.warmup;rule=mser5"
    assert stopping.trim_warmup(records, "fixed", "ttft") == 0


def test_an_until_load_is_refused_where_it_cannot_work() -> None:
    from aibench.clients.llm import LLMClient

    spec = {"metric": "ttft", "stat": "p99", "rel_ci": 0.05, "max_duration_s": 60}
    search = {"search": "rate", "slo_ttft_ms": 100}
    searched = validate({"requests": 0, "until": spec, **search}, "kinds/llm", "t")
    assert LLMClient().params_problem(searched, 900)[0] == ("until", "search")
    plain = validate({"requests": 0, "until": spec}, "kinds/llm", "t")
    assert LLMClient().nodes_problem(plain, 2)[0] == ("until",)
    assert LLMClient().own_duration_s(plain) == 60  # the budget and the SLURM time count its cap
    assert LLMClient().params_problem({**plain, "until": {**plain["until"], "max_duration_s": 1000}}, 900)


def test_mser5_cuts_by_send_order_whatever_failed_or_has_no_value() -> None:
    """The cut is found on the answered requests' values, and everything sent up to its last one is
    excluded: a failure inside the transient too (else the error rate and the window would keep it),
    and a request with no value (tpot of a one-token answer) does not shift the cut."""
    rng, records = np.random.default_rng(5), []
    for index in range(1, 201):
        slow = index <= 20
        first, gap = index + (0.5 if slow else 0.05) + rng.normal(0, 0.002), 0.05 if slow else 0.01
        chunks = [first] if index in (7, 150) else [first, first + gap, first + 2 * gap]  # one: no tpot
        record = load.Record(index, False, intended=float(index), chunks=chunks, end=chunks[-1],
                             output_tokens=len(chunks))  # fmt: skip
        if index == 12:
            record.status, record.chunks = "error", []
        records.append(record)
    cut = stopping.trim_warmup(records, "mser5", "ttft")
    assert 20 <= cut <= 26 and all(r.warmup for r in records if r.index <= 20)
    assert next(r for r in records if r.index == 12).warmup  # the failure inside the transient
    for r in records:
        r.warmup = False
    assert 20 <= stopping.trim_warmup(records, "mser5", "tpot") <= 26  # 7's missing tpot shifts nothing


def test_the_running_check_gathers_each_answer_once() -> None:
    answers = stopping.Answers("ttft")
    records = [load.Record(i, i == 0, intended=float(i)) for i in range(5)]
    assert answers.update(records) == []  # all in flight
    for r in records[:3]:
        r.chunks, r.end = [r.intended + 0.1], r.intended + 0.2
    records.append(load.Record(5, False, intended=5.0, chunks=[5.3], end=5.4))
    assert answers.update(records) == pytest.approx([100.0, 100.0, 300.0])  # the warm-up left out
    for r in records[3:5]:
        r.chunks, r.end = [r.intended + 0.05], r.intended + 0.1
    assert sorted(answers.update(records)) == pytest.approx(sorted(stopping.values_of(records, "ttft")))
    assert answers.pending == []
