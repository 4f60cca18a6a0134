"""A real llama.cpp server (llama-server from the xllamacpp wheel) serving SmolLM2-135M with 4 slots,
driven by the llm client; its own /metrics through the relay that holds its key."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import pytest
import requests

from aibench import lifecycle, probes
from aibench.clients.llm import load
from aibench.clients.runner import run_point_against
from aibench.contracts import DeploymentSpec
from aibench.ports import free_port
from aibench.recipes import load_service
from aibench.recipes.validation import validate
from aibench.secrets import read_secrets
from aibench.services import SERVICES
from aibench.services.llamacpp import model_path
from tests.conftest import ROOT

PARAMS = load_service(ROOT / "recipes" / "services" / "llamacpp.yaml").params


@pytest.fixture(scope="module")
def llamacpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not model_path(None).is_file():
        pytest.fail(f"{model_path(None)} missing: run `make test` (it runs envs/install-llm.sh)")
    service_dir = tmp_path_factory.mktemp("llm") / "llm" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("llm", "llamacpp", PARAMS))
    try:
        lifecycle.wait_ready(service_dir, timeout_s=120, interval_s=0.1)
        yield service_dir
    finally:
        lifecycle.stop(service_dir)


def raw_rows(directory: Path) -> list[dict]:
    text = gzip.decompress((directory / "raw.csv.gz").read_bytes()).decode()
    return [r for r in csv.DictReader(io.StringIO(text)) if r["warmup"] == "0"]


def endpoint(service_dir: Path) -> tuple[str, str]:
    e = json.loads((service_dir / "ready.json").read_text())
    return f"http://{e['host']}:{e['port']}", read_secrets(service_dir / "secrets.env")["LLM_API_KEY"]


def test_api_key_required_and_kept_off_argv(llamacpp: Path) -> None:
    base, key = endpoint(llamacpp)
    body = {"model": "smollm2", "prompt": "Hi", "max_tokens": 1}
    for path in ("/v1/completions", "/v1/models", "/metrics", "/slots"):
        assert requests.post(base + path, json=body, timeout=30).status_code == 401, path
    assert requests.post(base + "/v1/completions", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {key}"}).status_code == 200  # fmt: skip
    server = psutil.Process(json.loads((llamacpp / "endpoint.json").read_text())["pid"])
    assert key not in " ".join(server.cmdline())
    assert server.environ()["OMP_WAIT_POLICY"] == "passive"  # GNU OpenMP's threads do not spin
    for name in ("service.log", "spec.json", "ready.json"):
        assert key not in (llamacpp / name).read_text(), name
    # llama-server logs the last 4 characters of a single key ("api_keys: ****<last4>"): it has two
    assert f"****{key[-4:]}" not in (llamacpp / "service.log").read_text()
    assert len(server.environ()["LLAMA_API_KEY"].split(",")) == 2


def test_the_alias_is_served_and_the_slots_are_the_recipes(llamacpp: Path) -> None:
    """The model name is the recipe's alias, whole (a plain string given to xllamacpp's set-typed
    model_alias would serve "2"), and the server has the recipe's slots and context per slot."""
    base, key = endpoint(llamacpp)
    headers = {"Authorization": f"Bearer {key}"}
    models = requests.get(base + "/v1/models", headers=headers, timeout=30).json()
    assert [m["id"] for m in models["data"]] == [PARAMS["model_alias"]]
    slots = requests.get(base + "/slots", headers=headers, timeout=30).json()
    assert len(slots) == PARAMS["n_parallel"]
    assert {s["n_ctx"] for s in slots} == {PARAMS["ctx_per_slot"]}


def test_concurrent_streams_are_decoded_together(llamacpp: Path, tmp_path: Path) -> None:
    """Continuous batching: with 4 streams the server decodes several sequences per llama_decode()
    call (its own n_busy_slots_per_decode, read through the relay that holds the key)."""
    before = server_metrics(llamacpp)
    params = validate({"mode": "closed", "concurrency": 4, "requests": 8, "max_tokens": 16}, "kinds/llm", "t")
    summary = run_point_against(llamacpp, tmp_path, client_kind="llm", params=params, timeout_s=300)
    assert summary["status"] == "ok", summary["error"]
    after = server_metrics(llamacpp)
    decodes = after["llamacpp:n_decode_total"] - before["llamacpp:n_decode_total"]
    tokens = after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"]
    client_tokens = sum(int(r["output_tokens"]) for r in raw_rows(tmp_path))
    assert tokens >= client_tokens  # the warm-up request counts at the server too
    assert tokens / decodes > 1.5, (tokens, decodes)  # one decode per token would be 1
    assert after["llamacpp:n_busy_slots_per_decode"] > 1


def server_metrics(service_dir: Path) -> dict[str, float]:
    """The server's /metrics as the run's Prometheus reads it: through the relay, which adds the key."""
    base, key = endpoint(service_dir)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    relay_port = free_port(host)
    relay = subprocess.Popen(
        [sys.executable, "-m", "aibench.metrics_relay", "--listen", f"{host}:{relay_port}",
         "--upstream", f"{host}:{port}", "--bearer-env", "AIBENCH_UPSTREAM_KEY"],
        env={**os.environ, "AIBENCH_UPSTREAM_KEY": key},
    )  # fmt: skip
    try:
        url = f"http://{host}:{relay_port}/metrics"
        probes.poll(lambda: probes.http(url), 20, 0.1)
        text = requests.get(url, timeout=10).text
        assert key not in text and "llamacpp:" in text
        assert requests.post(url, timeout=10).status_code == 404  # GET /metrics only
    finally:
        relay.terminate()
        relay.wait(10)
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:"):
            name, value = line.split()
            values[name] = float(value)
    return values


def test_closed_loop_streaming_metrics_are_consistent(llamacpp: Path, tmp_path: Path) -> None:
    params = validate({"mode": "closed", "concurrency": 2, "requests": 4, "max_tokens": 12}, "kinds/llm", "t")
    summary = run_point_against(llamacpp, tmp_path, client_kind="llm", params=params, timeout_s=300)
    assert summary["status"] == "ok", summary["error"]
    rows = raw_rows(tmp_path)
    assert len(rows) == 4
    for r in rows:
        assert r["status"] == "ok"
        assert 0 < float(r["ttft_ms"]) <= float(r["e2el_ms"])
        # llama-server streams usage (stream_options.include_usage): the count it generated
        assert r["token_source"] == "usage" and 1 <= int(r["output_tokens"]) <= 12
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    assert by[("output_token_throughput", "mean")] > 1
    assert by[("ttft", "p99")] >= by[("ttft", "median")] > 0


def test_open_loop_schedule_honoured(llamacpp: Path, tmp_path: Path) -> None:
    settings = {"mode": "open", "rate": 4, "arrival": "poisson", "seed": 3}
    settings |= {"requests": 6, "warmup_requests": 0, "max_tokens": 8}
    params = validate(settings, "kinds/llm", "t")
    summary = run_point_against(llamacpp, tmp_path, client_kind="llm", params=params, timeout_s=300)
    rows = raw_rows(tmp_path)
    intended = np.array([float(r["intended_send_s"]) for r in rows])
    assert np.allclose(intended, load.schedule(6, 4, "poisson", 3), atol=1e-6)
    # sent on time although the server is busy (a closed loop would wait a whole request here)
    assert max(float(r["queue_delay_ms"]) for r in rows) < 250
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    assert by[("offered_rate", "mean")] == 4 and by[("achieved_rate", "mean")] > 0


def test_the_kinds_server_queries_name_what_the_live_server_exports(llamacpp: Path) -> None:
    exported = set(server_metrics(llamacpp))
    queries = SERVICES.create("llamacpp").server_queries()
    for raw, promql in queries.items():
        names = re.findall(r"llamacpp:[a-z_]+", promql)
        assert names and set(names) <= exported, (raw, promql, sorted(exported))


def test_streams_on_fresh_connections_fail_none(llamacpp: Path, tmp_path: Path) -> None:
    """llama-server closes its connection after each stream (while announcing keep-alive): the kind's
    endpoint says so, and a closed loop, whose next request would reuse the dead connection at once,
    loses no request."""
    assert json.loads((llamacpp / "endpoint.json").read_text())["extra"]["reuse_connections"] is False
    params = validate({"mode": "closed", "concurrency": 2, "requests": 10, "max_tokens": 4}, "kinds/llm", "t")
    summary = run_point_against(llamacpp, tmp_path, client_kind="llm", params=params, timeout_s=300)
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    assert by[("error_rate", "mean")] == 0, [r["error"] for r in raw_rows(tmp_path)]


def test_re_tokenizing_is_the_last_resort_and_uses_the_servers_tokenizer(llamacpp: Path) -> None:
    """A stream without any count of the server's (source ``chunks``) is re-counted by llama.cpp's own
    /tokenize; a stream that had usage is left alone."""
    base, key = endpoint(llamacpp)
    target = load.Target(base, "openai-chat", "smollm2", key, 8, 60)
    text = "Hello world, this is it."
    bare = load.Record(0, False, 0.0, chunks=[0.1, 0.2], text=text, output_tokens=2, token_source="chunks")
    counted = load.Record(1, False, 0.0, chunks=[0.1], text=text, output_tokens=9, token_source="usage")

    async def recount() -> None:
        async with aiohttp.ClientSession() as session:
            await load.count_tokens(session, target, [bare, counted])

    asyncio.run(recount())
    assert bare.token_source == "server-tokenize" and bare.output_tokens == 7  # SmolLM2's tokens of text
    assert (counted.token_source, counted.output_tokens) == ("usage", 9)
