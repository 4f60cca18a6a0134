"""SLO search: bracketing by doubling, then bisection, over a service whose latency grows with load."""

from __future__ import annotations

from aibench.clients.llm.load import Record
from aibench.clients.llm.search import meets, search


def records_with_ttft(ttft_ms: float, tokens: int = 5, itl_ms: float = 10) -> list[Record]:
    chunks = [ttft_ms / 1000 + i * itl_ms / 1000 for i in range(tokens)]
    return [Record(i, False, intended=0.0, actual=0.0, chunks=chunks, end=chunks[-1], output_tokens=tokens)
            for i in range(10)]  # fmt: skip


def test_finds_the_highest_passing_concurrency() -> None:
    tried: list[float] = []

    def run(value: float) -> list[Record]:  # TTFT grows 100 ms per stream: the SLO of 750 ms allows 7
        tried.append(value)
        return records_with_ttft(100 * value)

    best, trials = search(run, 1, 64, slo_ttft_ms=750, slo_tpot_ms=0, max_trials=20, integer=True)
    assert best == 7
    assert tried[:5] == [1, 2, 4, 8, 6]  # bracket [4, 8], then bisect
    assert [t.passed for t in trials] == [v * 100 <= 750 for v in tried]


def test_low_bound_failing_gives_zero_and_high_bound_caps() -> None:
    assert search(lambda v: records_with_ttft(1000), 1, 64, 500, 0, 10, integer=True)[0] == 0
    best, trials = search(lambda v: records_with_ttft(10), 1, 20, 500, 0, 10, integer=True)
    assert best == 20 and [t.value for t in trials] == [1, 2, 4, 8, 16, 20]


def test_rate_search_and_tpot_slo() -> None:
    def run(rate: float) -> list[Record]:
        return records_with_ttft(50, itl_ms=2 * rate)  # TPOT grows with the rate

    best, _ = search(run, 0.5, 100, slo_ttft_ms=0, slo_tpot_ms=20, max_trials=30, integer=False)
    assert 9.5 <= best <= 10


def test_failed_requests_fail_the_trial() -> None:
    records = records_with_ttft(10)
    records[3].status = "error"
    assert meets(records, 100, 100)[2] is False
