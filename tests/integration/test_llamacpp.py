"""A real llama.cpp server (llama-cpp-python) serving SmolLM2-135M, driven by the llm client."""

from __future__ import annotations

import csv
import gzip
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from aibench import lifecycle
from aibench.clients.llm import load
from aibench.clients.runner import run_point_against
from aibench.contracts import DeploymentSpec
from aibench.recipes import load_service
from aibench.recipes.validation import validate
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


def test_api_key_required(llamacpp: Path) -> None:
    e = json.loads((llamacpp / "ready.json").read_text())
    url = f"http://{e['host']}:{e['port']}/v1/completions"
    body = {"model": "smollm2", "prompt": "Hi", "max_tokens": 1}
    assert requests.post(url, json=body, timeout=30).status_code in (401, 403)
    key = (llamacpp / "secrets.env").read_text().split("=", 1)[1].strip()
    assert (
        requests.post(url, json=body, timeout=30, headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    assert stat.S_IMODE((llamacpp / "llamacpp.json").stat().st_mode) == 0o600
    assert (
        key not in (llamacpp / "service.log").read_text() and key not in (llamacpp / "spec.json").read_text()
    )


def test_closed_loop_streaming_metrics_are_consistent(llamacpp: Path, tmp_path: Path) -> None:
    params = validate({"mode": "closed", "concurrency": 2, "requests": 4, "max_tokens": 12}, "kinds/llm", "t")
    summary = run_point_against(llamacpp, tmp_path, client_kind="llm", params=params, timeout_s=300)
    assert summary["status"] == "ok", summary["error"]
    rows = raw_rows(tmp_path)
    assert len(rows) == 4
    for r in rows:
        assert r["status"] == "ok"
        assert 0 < float(r["ttft_ms"]) <= float(r["e2el_ms"])
        # llama-cpp-python streams no usage: the server's own tokenizer counts the output
        assert r["token_source"] == "server-tokenize" and 1 <= int(r["output_tokens"]) <= 13
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
    # sent on time although the server queues (a closed loop would wait a whole request, seconds, here)
    assert max(float(r["queue_delay_ms"]) for r in rows) < 250

    # the server serves one request at a time: later requests wait, and TTFT (from the intended send) shows it
    ttft = [float(r["ttft_ms"]) for r in rows]
    assert max(ttft) > min(ttft)
    by = {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}
    assert by[("offered_rate", "mean")] == 4 and by[("achieved_rate", "mean")] > 0
