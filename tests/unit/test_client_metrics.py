"""The client kinds' pure summarising functions on known inputs: LLM records, redis-benchmark's CSV,
sysbench's report, Chroma's batches and queries (the definitions are docs/metrics.md's)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aibench.clients.chroma import metrics as chroma_metrics
from aibench.clients.chroma.recall import exact_neighbours
from aibench.clients.llm import load
from aibench.clients.llm import metrics as llm_metrics
from aibench.clients.redis_benchmark import parse_csv
from aibench.clients.sysbench import parse_report
from tests.unit.samples import (
    CHROMA_BATCHES,
    CHROMA_EXACT,
    REDIS_CSV,
    SYSBENCH_REPORT,
    chroma_queries,
    llm_records,
)


def test_tpot_undefined_for_one_token() -> None:
    record = load.Record(0, False, intended=0.0, actual=0.0, chunks=[0.05], end=0.06, output_tokens=1)
    assert math.isnan(llm_metrics.per_request(record)["tpot_ms"])


def test_llm_summary_of_known_records() -> None:
    metrics = llm_metrics.summarize(llm_records(), "open", 5.0, {"ttft_ms": 120.0})
    by = {(m.name, m.stat): m for m in metrics}
    assert by[("ttft", "median")].value == pytest.approx(100.0)  # from the intended send
    assert by[("tpot", "p99")].value == pytest.approx(50.0) and by[("itl", "max")].value == pytest.approx(50)
    assert by[("e2el", "mean")].value == pytest.approx(250.0)
    assert by[("queue_delay", "median")].value == pytest.approx(1.0)
    assert by[("requests", "count")].value == 3 and by[("error_rate", "mean")].value == pytest.approx(1 / 3)
    window = 0.85 - 0.2  # first intended send of a measured request to the end of the last
    assert by[("request_throughput", "mean")].value == pytest.approx(2 / window)
    assert by[("output_token_throughput", "mean")].value == pytest.approx(8 / window)
    assert by[("goodput", "mean")].value == pytest.approx(2 / window)
    assert by[("achieved_rate", "mean")].value == pytest.approx(2 / 0.4)  # sends 200 ms apart
    assert by[("offered_rate", "mean")].value == 5
    assert {stat for name, stat in by if name == "ttft"} == {"mean", "median", "p90", "p95", "p99", "max"}


def test_redis_csv_columns_become_stats_of_one_vocabulary() -> None:
    by = {(m.labels["command"], m.name, m.stat): m for m in parse_csv(REDIS_CSV)}
    assert by[("SET", "throughput", "mean")].value == 20990.76
    assert by[("GET", "latency", "median")].value == 0.055  # redis-benchmark's p50 column
    stats = {stat for _, name, stat in by if name == "latency"}
    assert stats == {"mean", "min", "median", "p95", "p99", "max"}
    assert {m.formula for m in by.values()} == {"redis-benchmark.throughput", "redis-benchmark.latency"}


def test_redis_parse_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="not redis-benchmark CSV"):
        parse_csv("SET: 1234.5 requests per second\n")


def test_sysbench_report_numbers() -> None:
    by = {(m.name, m.stat, m.labels.get("kind")): m for m in parse_report(SYSBENCH_REPORT)}
    assert by[("transactions", "count", None)].value == 2768
    assert by[("transactions_per_s", "mean", None)].value == 553.30
    assert by[("queries", "count", "read")].value == 38752
    assert by[("queries_per_s", "mean", None)].value == 11066.06
    assert [by[("latency", s, None)].value for s in ("min", "mean", "p95", "max")] == [0.71, 1.81, 2.22, 9.94]
    assert by[("errors", "count", None)].formula == "sysbench.errors"


def test_sysbench_parse_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="not a sysbench run report"):
        parse_report("FATAL: unable to connect to MySQL server")


def test_chroma_summary_of_known_queries() -> None:
    params = {"batch_size": 100, "k": 2, "mode": "open", "rate": 10}
    metrics = chroma_metrics.summarize(CHROMA_BATCHES, chroma_queries(), CHROMA_EXACT, params)
    by = {(m.name, m.stat): m for m in metrics}
    assert by[("insert_throughput", "mean")].value == pytest.approx(200 / 0.9)
    assert by[("insert_throughput", "mean")].labels == {"batch_size": "100"}
    assert by[("query_latency", "max")].value == pytest.approx(30.0)  # answered, from the intended send
    assert by[("queries_per_s", "mean")].value == pytest.approx(2 / (1.23 - 1.1))
    assert by[("recall", "mean")].value == pytest.approx(0.75) and by[("recall", "min")].value == 0.5
    perfect = by[("recall_perfect", "mean")]  # one of the two answered queries returned both neighbours
    assert (perfect.value, perfect.n, perfect.labels) == (0.5, 2, {"k": "2"})
    assert perfect.formula == "chroma.recall_perfect;ci=wilson" and 0 < perfect.ci_low < 0.5 < perfect.ci_high
    assert by[("queries_per_s", "mean")].low_n  # two answers: too few for a throughput's interval
    assert by[("error_rate", "mean")].value == pytest.approx(1 / 3) and by[("requests", "count")].value == 3
    assert by[("queue_delay", "max")].value == pytest.approx(10.0)
    assert by[("offered_rate", "mean")].value == 10


def test_exact_neighbours_against_a_full_sort() -> None:
    rng = np.random.default_rng(5)
    documents, queries = rng.normal(size=(500, 16)), rng.normal(size=(40, 16))
    for space in ("l2", "cosine", "ip"):
        if space == "l2":
            d = ((queries[:, None, :] - documents[None, :, :]) ** 2).sum(-1)
        elif space == "cosine":
            unit = documents / np.linalg.norm(documents, axis=1)[:, None]
            d = 1 - (queries / np.linalg.norm(queries, axis=1)[:, None]) @ unit.T
        else:
            d = 1 - queries @ documents.T
        assert np.array_equal(exact_neighbours(documents, queries, 7, space), np.argsort(d, axis=1)[:, :7])
