"""The LLM load generator against a streaming server with a known schedule.

The schedule's gaps are wide (tens of ms): a client that timestamps the wrong chunk, counts from the wrong
instant or merges chunks is off by a whole gap, while scheduling noise on a shared 2-core machine is not.
Differences between chunks (ITL, TPOT) are checked both ways to a sixth of a gap at the median. Latencies
from the send (TTFT, E2EL) also carry the request's transit and the server's lateness, both one-sided: a
chunk is never received before its scheduled time (the schedule counts from the request's arrival, after
the send), so those are checked strictly below and to half a gap above (a loaded CI machine was seen
5-9 ms late). The precise figures (p99 of the client's own error, against the server's write stamps) are
bench/llm_measurement_error.py's job, not a test's."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import subprocess
import sys
import time

import numpy as np
import pytest

from aibench.clients.llm import load, metrics, protocols
from aibench.clients.runner import run_point
from aibench.recipes.validation import validate
from tests.scheduled_llm_server import ScheduledServer

TTFT, ITL = 120.0, 30.0  # the scheduled server's gaps, ms
TOLERANCE = 5.0  # a sixth of the smallest gap: for differences between chunks
LATE = ITL / 2  # transit and server lateness allowed above the schedule, ms (a whole-gap mistake is ITL)


def params(**overrides: object) -> dict:
    return validate(dict(overrides), "kinds/llm", "test")


def run_llm(server: ScheduledServer, out_dir, secrets: dict | None = None, **overrides: object) -> dict:
    """One point of the llm client against ``server``, written into ``out_dir``."""
    endpoint = {"host": "127.0.0.1", "port": server.port}
    return run_point(client_kind="llm", endpoint=endpoint, secrets=secrets or {}, out_dir=out_dir,
                     timeout_s=60, params=params(**overrides))  # fmt: skip


def rows(summary_dir) -> list[dict]:
    return list(
        csv.DictReader(io.StringIO(gzip.decompress((summary_dir / "raw.csv.gz").read_bytes()).decode()))
    )


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions", "ollama-generate", "ollama-chat"])
def test_metrics_match_the_schedule(api: str, tmp_path) -> None:
    with ScheduledServer(ttft_ms=TTFT, itl_ms=ITL) as server:
        summary = run_llm(
            server,
            tmp_path,
            api=api,
            mode="closed",
            concurrency=4,
            requests=12,
            warmup_requests=4,
            max_tokens=8,
        )
    assert summary["status"] == "ok"
    raw = [r for r in rows(tmp_path) if r["warmup"] == "0"]
    assert len(raw) == 12
    errors = {
        "tpot": [float(r["tpot_ms"]) - ITL for r in raw],
        "itl": [float(g) - ITL for r in raw for g in r["itl_ms"].split(";")],
    }
    for name, error in errors.items():
        assert np.median(np.abs(error)) <= TOLERANCE, (name, error)
    lateness = {
        "ttft": [float(r["ttft_ms"]) - TTFT for r in raw],
        "e2el": [float(r["e2el_ms"]) - (TTFT + 7 * ITL) for r in raw],
    }
    for name, late in lateness.items():
        assert min(late) >= 0 and np.median(late) <= LATE, (name, late)
    assert len(errors["itl"]) == 12 * 7
    for r in raw:
        assert r["output_tokens"] == "8"
        assert r["token_source"] == ("ollama:eval_count" if api.startswith("ollama") else "usage")
    by = {(m["name"], m["stat"]): m for m in summary["metrics"]}
    assert 0 <= by[("ttft", "median")]["value"] - TTFT <= LATE and by[("ttft", "p99")]["unit"] == "ms"
    assert abs(by[("itl", "median")]["value"] - ITL) <= TOLERANCE
    assert by[("requests", "count")]["value"] == 12
    assert by[("error_rate", "mean")]["value"] == 0
    assert by[("tpot", "median")]["formula"] == metrics.FORMULAS["tpot"] + ";ci=order-statistic"
    tpot = by[("tpot", "median")]  # 12 requests: the median's 95% interval holds it, p99 has no upper bound
    assert tpot["n"] == 12 and tpot["ci_low"] <= tpot["value"] <= tpot["ci_high"] and not tpot["low_n"]
    assert by[("ttft", "p99")]["low_n"] and by[("ttft", "p99")]["ci_high"] is None
    errors = by[("error_rate", "mean")]
    assert errors["formula"] == "load.error_rate;ci=wilson" and errors["n"] == 12 and errors["ci_low"] == 0
    if api.startswith("ollama"):  # Ollama's server-side timings kept as their own columns
        assert raw[0]["eval_duration"] == "3000000" and raw[0]["load_duration"] == "1000000"


def test_open_loop_schedule_is_honoured(tmp_path) -> None:
    with ScheduledServer(ttft_ms=5, itl_ms=2) as server:
        summary = run_llm(
            server,
            tmp_path,
            mode="open",
            rate=50,
            arrival="poisson",
            seed=7,
            requests=60,
            warmup_requests=0,
            max_tokens=4,
        )
    raw = rows(tmp_path)
    expected = load.schedule(60, 50, "poisson", 7)
    intended = np.array([float(r["intended_send_s"]) for r in raw])
    assert np.allclose(intended, expected, atol=1e-6)  # the schedule was fixed in advance, seeded
    delays = np.array([float(r["queue_delay_ms"]) for r in raw])
    assert delays.min() >= 0 and np.median(delays) <= TOLERANCE  # mean gap between arrivals: 20 ms
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    assert by[("offered_rate", "mean")] == 50
    assert abs(by[("achieved_rate", "mean")] - (59 / expected[-1])) / (59 / expected[-1]) < 0.05
    # latency counts from the intended send time
    assert all(float(r["ttft_ms"]) >= float(r["queue_delay_ms"]) for r in raw)


def test_goodput_counts_requests_meeting_every_slo(tmp_path) -> None:
    with ScheduledServer(ttft_ms=30, itl_ms=5) as server:
        summary = run_llm(server, tmp_path, requests=6, warmup_requests=0, max_tokens=4, slo_ttft_ms=10)
    by = {(m["name"], m["stat"]): m for m in summary["metrics"]}
    assert by[("goodput", "mean")]["value"] == 0  # every ttft (~30 ms) misses the 10 ms SLO
    assert by[("request_throughput", "mean")]["value"] > 0
    assert "ttft<=10" in by[("goodput", "mean")]["formula"]


def test_api_key_refused_without_it(tmp_path) -> None:
    with ScheduledServer(api_key="k-123") as server:
        denied = run_llm(server, tmp_path / "a", requests=2, warmup_requests=0, max_tokens=2)
        allowed = run_llm(
            server, tmp_path / "b", {"LLM_API_KEY": "k-123"}, requests=2, warmup_requests=0, max_tokens=2
        )
    assert denied["status"] == "failed" and "2 of 2 requests failed" in denied["error"]
    assert all("HTTP 401" in r["error"] for r in rows(tmp_path / "a"))
    assert allowed["status"] == "ok"


# A transcript in the format Ollama documents for POST /api/generate (stream: true). No Ollama server
# exists for this machine: the protocol is tested against this transcript.
OLLAMA_TRANSCRIPT = b"""\
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":"The","done":false}
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.405406455-07:00","response":" sky","done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"context":[1,2,3],\
"total_duration":10706818083,"load_duration":6338219291,"prompt_eval_count":26,"prompt_eval_duration":130079000,\
"eval_count":259,"eval_duration":4232710000}
"""


def test_ollama_ndjson_transcript() -> None:
    events = [protocols.parse_ndjson(line) for line in OLLAMA_TRANSCRIPT.splitlines()]
    assert [e.text for e in events] == ["The", " sky", ""]
    final = events[-1]
    assert final.done and final.prompt_tokens == 26 and final.output_tokens == 259
    assert final.timings == {"total_duration": 10706818083, "load_duration": 6338219291,
                             "prompt_eval_duration": 130079000, "eval_duration": 4232710000}  # fmt: skip
    assert protocols.parse_ndjson(b'{"error":"model not found"}').error == "model not found"


def test_openai_sse_lines() -> None:
    assert protocols.parse_sse(b"") is None and protocols.parse_sse(b": keep-alive") is None
    assert protocols.parse_sse(b"data: [DONE]").done
    event = protocols.parse_sse(b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}')
    assert (event.prompt_tokens, event.output_tokens, event.text) == (3, 5, "")
    assert protocols.parse_sse(b'data: {"choices":[{"delta":{"content":"Hi"}}]}').text == "Hi"


def test_a_servers_own_count_outside_usage_is_kept_and_usage_wins() -> None:
    """llama.cpp's counts besides usage: ``timings.predicted_n`` (OpenAI endpoints' last chunk) and
    ``tokens_predicted`` (its /completion API); usage, when a stream has it, is what is recorded."""
    timings = protocols.parse_sse(b'data: {"choices":[],"timings":{"predicted_n":31,"prompt_n":7}}')
    assert timings.server_count == (31, "timings:predicted_n") and timings.output_tokens is None
    native = protocols.parse_sse(b'data: {"content":"","stop":true,"tokens_predicted":12}')
    assert native.server_count == (12, "tokens_predicted")
    last = b'{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":32},"timings":{"predicted_n":32}}'
    both = protocols.parse_sse(b"data: " + last)
    assert both.output_tokens == 32 and both.server_count == (32, "timings:predicted_n")
    assert protocols.parse_sse(b'data: {"choices":[],"timings":{"predicted_n":"31"}}').server_count is None


def test_schedule_constant_and_poisson() -> None:
    assert np.allclose(load.schedule(4, 10, "constant", 0), [0, 0.1, 0.2, 0.3])
    gaps = np.diff(load.schedule(20001, 100, "poisson", 3))
    assert abs(gaps.mean() - 0.01) < 0.0005 and not np.allclose(gaps, gaps[0])
    assert np.array_equal(load.schedule(50, 5, "poisson", 9), load.schedule(50, 5, "poisson", 9))


def test_runs_inside_time_limit() -> None:
    with ScheduledServer(ttft_ms=5, itl_ms=1) as server, pytest.raises(asyncio.TimeoutError):
        target = load.Target(server.url, "openai-chat", "m", None, 500, 30)
        settings = {"mode": "closed", "concurrency": 1, "rate": 1, "arrival": "poisson", "seed": 1}
        running = load.run(target, ["p"], requests=100, duration_s=0, warmup_requests=0, **settings)
        asyncio.run(asyncio.wait_for(running, 0.5))


def test_slo_search_mode_records_its_result_and_trials(tmp_path) -> None:
    with ScheduledServer(ttft_ms=20, itl_ms=2) as server:
        passing = run_llm(server, tmp_path / "pass", search="concurrency", search_low=1, search_high=4,
                          slo_ttft_ms=200, requests=4, warmup_requests=0, max_tokens=3)  # fmt: skip
        failing = run_llm(server, tmp_path / "fail", search="concurrency", search_low=1, search_high=4,
                          slo_ttft_ms=5, requests=4, warmup_requests=0, max_tokens=3)  # fmt: skip
    by = {(m["name"], m["stat"]): m for m in passing["metrics"]}
    assert by[("slo_max_concurrency", "max")]["value"] == 4  # TTFT is 20 ms whatever the load
    assert by[("slo_search_trials", "count")]["value"] == 3  # 1, 2, 4
    assert by[("slo_max_concurrency", "max")]["formula"] == (
        "llm.slo_max;search=concurrency;slo=p99_ttft<=200ms,p99_tpot<=0ms"  # docs/metrics.md: SLO search
    )
    assert {float(r["trial_value"]) for r in rows(tmp_path / "pass")} == {1.0, 2.0, 4.0}
    by = {(m["name"], m["stat"]): m["value"] for m in failing["metrics"]}
    assert by[("slo_max_concurrency", "max")] == 0 and by[("slo_search_trials", "count")] == 1


def test_run_client_cli_against_any_endpoint(tmp_path) -> None:
    import json
    import subprocess
    import sys

    with ScheduledServer(ttft_ms=5, itl_ms=1) as server:
        argv = [sys.executable, "-m", "aibench.cli", "run-client", "llm", "--endpoint", server.url]
        argv += ["--api", "ollama", "--out", str(tmp_path), "--set", "requests=3", "--set", "max_tokens=4"]
        done = subprocess.run([*argv, "--set", "model=llama3.2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["params"]["api"] == "ollama-generate" and summary["status"] == "ok"
    assert summary["client"]["tool"]["model"] == "llama3.2"


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions", "ollama-generate", "ollama-chat"])
def test_receive_delay_against_server_write_stamps(api: str) -> None:
    """The client's own error, isolated from server timing: each chunk's receive time minus the time the
    server wrote it (both CLOCK_MONOTONIC on one machine); TTFT and E2EL then equal the server's actual
    schedule (first and last write after the request was sent), at the median within a fraction of a gap."""
    import re

    with ScheduledServer(ttft_ms=TTFT, itl_ms=ITL) as server:
        target = load.Target(server.url, api, "m", None, 6, 30)
        settings = {"mode": "closed", "concurrency": 8, "rate": 1, "arrival": "poisson", "seed": 1}
        records, _ = asyncio.run(
            load.run(target, ["p"], requests=24, duration_s=0, warmup_requests=8, **settings)
        )
    delays: list[float] = []
    truth: dict[str, list[float]] = {"ttft": [], "e2el": []}
    for record in (r for r in records if not r.warmup):
        written = [float(t) for t in re.findall(r"@([0-9.]+)", record.text)]
        assert len(written) == len(record.chunks) == 6
        delays += [
            (record.origin + got - wrote) * 1000 for got, wrote in zip(record.chunks, written, strict=True)
        ]
        m = metrics.per_request(record)
        sent = record.origin + record.actual
        truth["ttft"].append(m["ttft_ms"] - (written[0] - sent) * 1000)
        truth["e2el"].append(m["e2el_ms"] - (written[-1] - sent) * 1000)
    assert min(delays) >= 0
    assert np.median(delays) <= TOLERANCE, delays
    for name, error in truth.items():
        assert np.median(np.abs(error)) <= TOLERANCE, (name, error)


def test_requests_are_spread_over_replicas_round_robin(tmp_path) -> None:
    """Two replicas, each with its own API key: request i goes to replica i mod 2 with that replica's
    key (a request to the other one would be refused, 401), each request's replica recorded."""
    with ScheduledServer(ttft_ms=5, itl_ms=2, api_key="key-a") as a, ScheduledServer(
        ttft_ms=5, itl_ms=2, api_key="key-b"
    ) as b:
        replicas = [{"endpoint": {"host": "127.0.0.1", "port": s.port}, "secrets": {"LLM_API_KEY": k}}
                    for s, k in ((a, "key-a"), (b, "key-b"))]  # fmt: skip
        endpoint = {"host": "127.0.0.1", "port": a.port, "replicas": replicas}
        summary = run_point(client_kind="llm", endpoint=endpoint, secrets={"LLM_API_KEY": "key-a"},
                            out_dir=tmp_path, timeout_s=60,
                            params=params(mode="closed", concurrency=3, requests=9, warmup_requests=2,
                                          max_tokens=3))  # fmt: skip
    assert summary["status"] == "ok", summary["error"]
    records = rows(tmp_path)
    assert [int(r["replica"]) for r in records] == [i % 2 for i in range(11)]
    assert all(r["status"] == "ok" for r in records)
    assert summary["client"]["tool"]["replicas"] == 2


def test_closed_loop_warm_up_ends_before_the_measured_requests_begin(tmp_path) -> None:
    """No measured request shares the server with a warm-up one (a GuideLLM cross-check found a warm-up
    request inside the window at concurrency 2): the window, from the first measured send, holds only
    measured work."""
    with ScheduledServer(ttft_ms=20, itl_ms=5) as server:
        summary = run_llm(server, tmp_path, mode="closed", concurrency=3, requests=9, warmup_requests=2,
                          max_tokens=4)  # fmt: skip
    assert summary["status"] == "ok"
    records = rows(tmp_path)
    warm = [r for r in records if r["warmup"] == "1"]
    measured = [r for r in records if r["warmup"] == "0"]
    assert len(warm) == 2 and len(measured) == 9
    last_warm_end = max(float(r["end_s"]) for r in warm)
    assert min(float(r["actual_send_s"]) for r in measured) >= last_warm_end
    # the first measured requests go out together, one per worker
    firsts = sorted(float(r["intended_send_s"]) for r in measured)[:3]
    assert firsts[-1] - firsts[0] < ITL / 1000


def test_run_client_reports_progress_and_a_stall_while_the_load_runs(tmp_path) -> None:
    """`aibench run-client` against the scheduled server: progress lines on stderr while the point
    runs (done of planned, rate, failures, time), and, with a first chunk 2.5 s away at a 1 s stall
    limit, the warning that nothing completes, then its end."""
    with ScheduledServer(ttft_ms=2500, itl_ms=5) as server:
        argv = [sys.executable, "-m", "aibench.cli", "run-client", "llm", "--endpoint", server.url,
                "--api", "openai", "--out", str(tmp_path / "out"), "--progress-s", "0.5", "--stall-s", "1",
                "--set", "mode=closed", "--set", "concurrency=2", "--set", "requests=4",
                "--set", "warmup_requests=0", "--set", "max_tokens=4", "--set", "model=m"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any("progress: 0 of 4 requests (0%)" in line for line in lines), lines
    assert any("stalled: none of the requests completed for" in line for line in lines), lines
    assert any("progress resumed: 2 of 4 requests" in line for line in lines), lines
    end = [line for line in lines if "progress at the end: 4 of 4 requests (100%), " in line]
    assert len(end) == 1 and "0 failed" in end[0], lines


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_point_runs_until_its_precision_target_or_its_cap(mode: str, tmp_path) -> None:
    """``until`` against the scheduled server (TTFT 20 ms, a spread of the machine's own jitter): a
    median within 5% stops at the target, soon after min_requests and long before the cap; a p90
    within 0.0001% cannot be reached and stops at max_duration_s, saying so with the precision it had."""
    load_params = {"mode": mode, "concurrency": 4, "rate": 40, "requests": 0, "warmup_requests": 2,
                   "max_tokens": 4, "api": "openai-completions"}  # fmt: skip
    with ScheduledServer(ttft_ms=20, itl_ms=2) as server:
        started = time.monotonic()
        met = run_llm(server, tmp_path / "met", **load_params, until={
            "metric": "ttft", "stat": "median", "rel_ci": 0.05, "min_requests": 40, "max_duration_s": 30})
        took = time.monotonic() - started
        started = time.monotonic()
        capped = run_llm(server, tmp_path / "capped", **load_params, until={
            "metric": "ttft", "stat": "p90", "rel_ci": 1e-6, "min_requests": 40, "max_duration_s": 3})
        capped_took = time.monotonic() - started
    by = {(m["name"], m["stat"]): m for m in met["metrics"]}
    precision = by[("until_precision", "mean")]
    assert precision["formula"] == "load.until;metric=ttft;stat=median;rel_ci=0.05;stopped=target_met"
    assert precision["value"] <= 0.05 and precision["n"] >= 40
    assert 40 <= by[("requests", "count")]["value"] <= 200 and took < 15, (by[("requests", "count")], took)
    by = {(m["name"], m["stat"]): m for m in capped["metrics"]}
    precision = by[("until_precision", "mean")]
    assert precision["formula"].endswith(";stopped=max_duration_s") and precision["value"] > 1e-6
    assert 2.5 < capped_took < 10, capped_took
    assert by[("warmup_excluded", "count")]["value"] == 2
