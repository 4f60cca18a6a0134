"""A real Chroma 1.x server (`chroma run`) behind the run's token gateway, and the chroma client:
authentication, insert throughput, closed and open loop queries, recall@k, HNSW parameters, the
shipped real-text dataset, and `aibench run-client chroma`."""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from aibench import lifecycle
from aibench.clients.chroma import load
from aibench.clients.runner import run_point_against
from aibench.contracts import DeploymentSpec
from aibench.datasets import vectors
from aibench.files import read_json
from aibench.recipes.validation import validate
from aibench.secrets import read_secrets


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    service_dir = tmp_path_factory.mktemp("chroma") / "vec" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("vec", "chroma", {}))
    try:
        lifecycle.wait_ready(service_dir, timeout_s=60, interval_s=0.1)
        yield service_dir
    finally:
        lifecycle.stop(service_dir)


def params(**overrides: object) -> dict:
    return validate({"count": 2000, "dimension": 32, "requests": 100, "warmup_requests": 5, **overrides},
                    "kinds/chroma-client", "test")  # fmt: skip


def point(chroma: Path, out: Path, **overrides: object) -> tuple[dict, list[dict]]:
    summary = run_point_against(chroma, out, client_kind="chroma", params=params(**overrides), timeout_s=300)
    raw = list(csv.DictReader(io.StringIO(gzip.decompress((out / "raw.csv.gz").read_bytes()).decode())))
    return summary, raw


def by_name(summary: dict) -> dict[tuple[str, str], float]:
    return {(m["name"], m["stat"]): m["value"] for m in summary["metrics"]}


def test_requests_without_the_token_are_refused(chroma: Path) -> None:
    endpoint = read_json(chroma / "endpoint.json")
    token = read_secrets(chroma / "secrets.env")["CHROMA_TOKEN"]
    base = f"http://{endpoint['host']}:{endpoint['port']}/api/v2"
    collections = f"{base}/tenants/default_tenant/databases/default_database/collections"
    for headers in ({}, {"X-Chroma-Token": "wrong"}, {"Authorization": "Bearer " + token[:-1]}):
        assert requests.get(collections, headers=headers, timeout=5).status_code == 401, headers
    assert requests.get(collections, headers={"X-Chroma-Token": token}, timeout=5).status_code == 200
    assert (
        requests.get(collections, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
    )
    with pytest.raises(Exception, match=r"(?i)unauthorized|could not connect|401"):
        load.connect(endpoint["host"], endpoint["port"], None).list_collections()
    # the server itself listens on the loopback only, on another port than the gateway
    assert endpoint["port"] not in {c.laddr.port for c in _listening("chroma")}


def _listening(comm: str) -> list:
    import psutil

    return [c for p in psutil.process_iter(["name"]) if p.info["name"] == comm
            for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN]  # fmt: skip


def test_gateway_refuses_an_oversized_head_and_relays_keep_alive(chroma: Path) -> None:
    endpoint = read_json(chroma / "endpoint.json")
    token = read_secrets(chroma / "secrets.env")["CHROMA_TOKEN"]
    with socket.create_connection((endpoint["host"], endpoint["port"]), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    with requests.Session() as session:  # one authenticated connection, many requests
        session.headers["X-Chroma-Token"] = token
        url = f"http://{endpoint['host']}:{endpoint['port']}/api/v2/heartbeat"
        assert all(session.get(url, timeout=5).status_code == 200 for _ in range(20))


def test_closed_loop_point(chroma: Path, tmp_path: Path) -> None:
    summary, raw = point(chroma, tmp_path, concurrency=2, batch_size=500)
    assert summary["status"] == "ok", summary.get("error")
    by = by_name(summary)
    assert by[("requests", "count")] == 100 and by[("error_rate", "mean")] == 0
    assert by[("insert_throughput", "mean")] > 0 and by[("queries_per_s", "mean")] > 0
    assert 0 < by[("query_latency", "median")] <= by[("query_latency", "p99")]
    inserts = [r for r in raw if r["phase"] == "insert"]
    assert [int(r["size"]) for r in inserts] == [500] * 4
    queries = [r for r in raw if r["phase"] == "query"]
    assert len(queries) == 105 and sum(r["warmup"] == "1" for r in queries) == 5
    assert all(float(r["queue_delay_ms"]) == 0 for r in queries)  # closed loop: sent when intended
    # the summary's recall is the mean of the measured queries' own recall
    measured = [float(r["recall"]) for r in queries if r["warmup"] == "0"]
    assert by[("recall", "mean")] == pytest.approx(np.mean(measured), abs=1e-4)
    assert summary["client"]["tool"]["vectors"] == 2000


def test_recall_follows_hnsw_parameters(chroma: Path, tmp_path: Path) -> None:
    """Recall is measured, not assumed: a starved graph (M=4, ef 2) misses neighbours that a generous
    search finds, on the same seeded data; exhaustive-quality settings find them all."""
    poor, _ = point(chroma, tmp_path / "poor", count=4000, max_neighbors=4, ef_construction=4, ef_search=2)
    good, _ = point(
        chroma, tmp_path / "good", count=4000, max_neighbors=32, ef_construction=200, ef_search=400
    )
    assert by_name(poor)[("recall", "mean")] < 0.9
    assert by_name(good)[("recall", "mean")] >= 0.99


def test_open_loop_point(chroma: Path, tmp_path: Path) -> None:
    summary, raw = point(chroma, tmp_path, mode="open", rate=100, arrival="poisson", seed=4)
    by = by_name(summary)
    assert by[("offered_rate", "mean")] == 100
    queries = [r for r in raw if r["phase"] == "query" and r["warmup"] == "0"]
    intended = np.array([float(r["intended_s"]) for r in queries])
    from aibench.clients.arrivals import schedule

    assert np.allclose(intended - intended[0], schedule(100, 100, "poisson", 4), atol=1e-5)
    assert all(float(r["queue_delay_ms"]) >= 0 for r in queries)
    # a query's latency counts from its intended send
    assert all(float(r["latency_ms"]) >= float(r["queue_delay_ms"]) for r in queries)


def test_shipped_text_embeddings(chroma: Path, tmp_path: Path) -> None:
    data = vectors.load(params(dataset="minilm-python-docs", count=0, queries=200))
    assert data.documents.shape == (2000, 384) and data.queries.shape == (200, 384)
    assert np.allclose(np.linalg.norm(data.documents, axis=1), 1, atol=1e-3)
    summary, _ = point(chroma, tmp_path, dataset="minilm-python-docs", count=0, space="cosine", requests=50)
    assert summary["status"] == "ok" and summary["client"]["tool"]["dimension"] == 384
    assert by_name(summary)[("recall", "mean")] > 0.9


def test_run_client_cli(chroma: Path, tmp_path: Path) -> None:
    endpoint = read_json(chroma / "endpoint.json")
    secrets = tmp_path / "secrets.env"
    secrets.write_text((chroma / "secrets.env").read_text())
    secrets.chmod(0o600)
    url = f"http://{endpoint['host']}:{endpoint['port']}"
    argv = [sys.executable, "-m", "aibench.cli", "run-client", "chroma", "--endpoint", url, "--secrets-file",
            str(secrets), "--out", str(tmp_path / "o"), "--set", "count=500", "--set", "requests=20",
            "--set", "dimension=8"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["params"]["count"] == 500
    token = read_secrets(chroma / "secrets.env")["CHROMA_TOKEN"]
    assert token not in done.stdout + done.stderr and token not in json.dumps(summary)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_queries_run_until_their_precision_target(chroma: Path, tmp_path: Path, mode: str) -> None:
    """``until`` on query latency: a median within 20% is met long before the 5,000 queries allowed
    (those never sent are left out, not counted as failures); one within 0.0001% stops at its 2 s cap."""
    target = {"metric": "query_latency", "stat": "median", "rel_ci": 0.2, "min_requests": 30,
              "max_duration_s": 60}  # fmt: skip
    met, raw = point(chroma, tmp_path / "met", mode=mode, rate=200, requests=5000, until=target)
    by = {(m["name"], m["stat"]): m for m in met["metrics"]}
    precision = by[("until_precision", "mean")]
    assert met["status"] == "ok" and precision["formula"].endswith(";stopped=target_met"), precision
    assert precision["value"] <= 0.2 and 30 <= by[("requests", "count")]["value"] < 5000
    assert by[("error_rate", "mean")]["value"] == 0
    measured = [r for r in raw if r["phase"] == "query" and r["warmup"] == "0"]
    assert len(measured) == by[("requests", "count")]["value"]
    capped, raw = point(chroma, tmp_path / "capped", mode=mode, rate=200, requests=5000,
                        until={**target, "rel_ci": 1e-6, "max_duration_s": 2})  # fmt: skip
    precision = next(m for m in capped["metrics"] if m["name"] == "until_precision")
    assert precision["formula"].endswith(";stopped=max_duration_s") and precision["value"] > 1e-6
    # the queries span the 2 s cap (and what was in flight then), not the 25 s 5,000 would take
    queries = [r for r in raw if r["phase"] == "query" and r["warmup"] == "0"]
    span = max(float(r["done_s"]) for r in queries) - min(float(r["intended_s"]) for r in queries)
    assert 1.5 < span < 3.5, span
