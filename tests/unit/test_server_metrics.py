"""The server-side figures: their arithmetic on metrics.csv rows, and each kind's PromQL against the names
its server registers (vLLM's as text, from its source; llama.cpp's against the live server in
tests/integration/test_llamacpp.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aibench.monitoring.server_metrics import histogram_quantile, server_rows
from aibench.monitoring.server_series import HISTOGRAMS, RAW_SERIES, check_queries
from aibench.services import SERVICES

VLLM_NAMES = Path(__file__).parent / "upstream" / "vllm-0.6.6-engine-metrics.txt"


def registered_vllm_metrics() -> dict[str, str]:
    lines = [line.split() for line in VLLM_NAMES.read_text().splitlines() if not line.startswith("#")]
    return {name: kind for _, name, kind in lines}


def frame(series: dict[str, list[float]], start: float = 1000.0, step: float = 1.0, labels: str = "") -> list:
    return [
        {"series": name, "timestamp": start + i * step, "value": v, "labels": labels}
        for name, values in series.items()
        for i, v in enumerate(values)
    ]


def by(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["metric"], r["stat"]): r["value"] for r in rows}


def test_vllm_queries_name_metrics_vllm_registers_with_their_types() -> None:
    registered = registered_vllm_metrics()
    queries = check_queries(SERVICES.create("vllm").server_queries())
    expected_type = {"server_requests_running": "gauge", "server_requests_waiting": "gauge",
                     "server_kv_cache_usage": "gauge", "server_output_tokens_total": "counter",
                     "server_prompt_tokens_total": "counter"}  # fmt: skip
    for raw, promql in queries.items():
        names = re.findall(r"vllm:[a-z_]+", promql)
        assert len(names) == 1, promql
        name = names[0]
        if raw.endswith(("_bucket", "_sum", "_count")):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name == f"{base}{raw[raw.rindex('_'):]}", (raw, name)
            assert registered.get(base) == "histogram", (raw, base)
        else:
            assert registered.get(name) == expected_type[raw], (raw, name)
        assert "{sel}" in promql.format(sel="{sel}")  # the run's selector is applied
    # every histogram the figures know is mapped, so vLLM points get TTFT/TPOT/queue/prefill/decode
    assert {f"{h.series}_bucket" for h in HISTOGRAMS.values()} <= set(queries)


def test_a_stray_server_series_is_refused() -> None:
    with pytest.raises(ValueError, match="not a server series: server_ttft_ms"):
        check_queries({"server_ttft_ms": "x"})
    assert "server_output_tokens_total" in RAW_SERIES


def test_gauges_counters_and_ratios_over_a_window() -> None:
    rows = frame({
        "server_requests_running": [0, 2, 4, 4, 2],
        "server_requests_waiting": [0, 0, 3, 1, 0],
        "server_output_tokens_total": [100, 100, 140, 180, 200],  # 100 tokens in 4 s
        "server_prompt_tokens_total": [50, 60, 60, 90, 90],
        "server_decode_seconds_total": [1.0, 1.0, 2.0, 3.5, 4.0],  # 3 s for 100 tokens
        "server_prefill_seconds_total": [0.2, 0.3, 0.3, 0.5, 0.5],
        "cpu_cores": [1, 1, 1, 1, 1],  # a resource series: not the server's
    })  # fmt: skip
    got = by(server_rows(pd.DataFrame(rows)))
    assert got[("server_requests_running", "mean")] == pytest.approx(2.4)
    assert got[("server_requests_running", "max")] == 4
    assert got[("server_requests_waiting", "mean")] == pytest.approx(0.8)
    assert got[("server_output_token_throughput", "mean")] == pytest.approx(25.0)
    assert got[("server_prompt_token_throughput", "mean")] == pytest.approx(10.0)
    assert got[("server_tpot", "mean")] == pytest.approx(30.0)  # ms per output token
    assert got[("server_prefill_time_per_token", "mean")] == pytest.approx(0.3 / 40 * 1000)
    assert ("server_kv_cache_usage", "mean") not in got  # not exported: no row, not a 0
    assert not [r for r in server_rows(pd.DataFrame(rows)) if r["metric"].startswith("cpu")]


def test_a_counter_with_one_sample_or_no_increase_gives_no_ratio() -> None:
    rows = frame({"server_output_tokens_total": [5.0], "server_decode_seconds_total": [1.0, 1.0],
                  "server_requests_running": [1.0]})  # fmt: skip
    got = by(server_rows(pd.DataFrame(rows)))
    assert ("server_output_token_throughput", "mean") not in got and ("server_tpot", "mean") not in got
    assert got[("server_requests_running", "mean")] == 1.0


def test_histogram_quantile_matches_prometheus_interpolation() -> None:
    bounds = np.array([0.1, 0.2, 0.4, math.inf])
    cumulative = np.array([10.0, 30.0, 40.0, 40.0])
    assert histogram_quantile(0.25, bounds, cumulative) == pytest.approx(0.1)  # rank 10: top of bucket 1
    assert histogram_quantile(0.5, bounds, cumulative) == pytest.approx(0.15)  # rank 20 within (0.1, 0.2]
    assert histogram_quantile(0.1, bounds, cumulative) == pytest.approx(0.04)  # first bucket from 0
    assert histogram_quantile(0.99, bounds, cumulative) == pytest.approx(0.2 + 0.2 * (39.6 - 30) / 10)
    # a rank in +Inf: the largest finite bound, as histogram_quantile answers
    assert histogram_quantile(0.99, bounds, np.array([10.0, 20.0, 30.0, 40.0])) == pytest.approx(0.4)
    assert math.isnan(histogram_quantile(0.5, bounds, np.zeros(4)))


def test_histogram_rows_count_only_the_windows_requests() -> None:
    """Buckets are cumulative since the server started: the window's requests are their increases.
    Before the window 100 requests all took < 0.1 s; in it 20 more, half of them 0.2-0.4 s."""
    rows = []
    buckets = {"0.1": (100, 110), "0.2": (100, 110), "0.4": (100, 120), "+Inf": (100, 120)}
    for le, (before, after) in buckets.items():
        rows += frame({"server_ttft_seconds_bucket": [before, after]}, labels=f"le={le}")
    rows += frame({"server_ttft_seconds_count": [100, 120], "server_ttft_seconds_sum": [5.0, 8.0]})
    got = by(server_rows(pd.DataFrame(rows)))
    assert got[("server_ttft", "count")] == 20
    assert got[("server_ttft", "mean")] == pytest.approx(150.0)  # 3 s over 20 requests, in ms
    assert got[("server_ttft", "median")] == pytest.approx(100.0)  # rank 10: the top of (0, 0.1]
    assert got[("server_ttft", "p90")] == pytest.approx(1000 * (0.2 + 0.2 * (18 - 10) / 10))
    assert all(r["source"] == "server" and r["formula"].startswith("server.histogram") for r in
               server_rows(pd.DataFrame(rows)))  # fmt: skip


def test_a_counter_reset_counts_from_zero_and_nan_samples_are_dropped() -> None:
    """A restarted server's counter drops to 0 and counts again: the window's increase is 40 + 30,
    never negative; NaN samples (a failed evaluation) give no row of their own."""
    rows = frame({"server_output_tokens_total": [100, 140, 10, 30],
                  "server_requests_running": [float("nan"), float("nan"), float("nan"), float("nan")],
                  "server_requests_waiting": [1.0, float("nan"), 3.0, 2.0]})  # fmt: skip
    got = by(server_rows(pd.DataFrame(rows)))
    assert got[("server_output_token_throughput", "mean")] == pytest.approx(70 / 3)
    assert ("server_requests_running", "mean") not in got
    assert got[("server_requests_waiting", "mean")] == pytest.approx(2.0)


def test_a_histogram_without_its_inf_bucket_gives_no_quantile() -> None:
    assert math.isnan(histogram_quantile(0.5, np.array([0.1, 0.2]), np.array([5.0, 10.0])))
    rows = frame({"server_tpot_seconds_bucket": [0, 10]}, labels="le=0.1")
    rows += frame({"server_tpot_seconds_count": [0, 10], "server_tpot_seconds_sum": [0.0, 0.5]})
    got = by(server_rows(pd.DataFrame(rows)))
    assert got[("server_tpot", "mean")] == pytest.approx(50.0) and ("server_tpot", "median") not in got
    assert [r["unit"] for r in server_rows(pd.DataFrame(rows)) if r["stat"] == "count"] == ["tokens"]
