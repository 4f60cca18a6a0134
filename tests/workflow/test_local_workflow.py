"""The whole workflow end-to-end on the local profile: real Redis, Prometheus and exporters."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from aibench.secrets import read_secrets
from tests.conftest import BIN, ROOT, snakemake

pytestmark = pytest.mark.workflow

SMALL = {
    "service": "redis",
    "client": "redis-benchmark",
    "client_params": {"tests": "get,set", "requests": 30000},
    "sweep": {"clients": [1, 8]},
    "repeats": 1,
}


def secret_found_nowhere_else(results: Path, experiment: str, holders: tuple[str, ...] = ()) -> str:
    """The experiment's generated secrets (its secrets.env); asserts no results file holds any of them
    but secrets.env and the 0600 ``holders`` the service reads them from (data directories aside).
    Returns the first (the client's) credential."""
    found = read_secrets(results / experiment / "service" / "secrets.env")
    values = [v for k, v in found.items() if k not in ("MYSQL_USER", "MYSQL_DATABASE")]
    for path in results.rglob("*"):
        if path.is_file() and path.name not in ("secrets.env", *holders) and "data" not in path.parts:
            data = path.read_bytes()
            assert not [k for k, v in found.items() if v in values and v.encode() in data], path
    client_keys = ("REDIS_PASSWORD", "LLM_API_KEY", "CHROMA_TOKEN", "MYSQL_PASSWORD")
    return next(found[k] for k in client_keys if k in found)


def snakemake_paper(run: Path, out: Path) -> subprocess.CompletedProcess:
    """`make paper RUN=run OUT=out`: the paper workflow on an archived run."""
    argv = [
        str(BIN / "snakemake"),
        "-s",
        "paper/Snakefile",
        "--cores",
        "1",
        "--config",
        f"run={run}",
        f"out={out}",
    ]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_end_to_end(make_config, workspace: Path, no_leftovers: float) -> None:
    config = make_config(SMALL)
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results"

    table = pd.read_csv(results / "summary.csv")
    client = table[table["source"] == "client"]
    assert sorted(client["point"].unique()) == ["clients-1_r0", "clients-8_r0"]
    assert set(client["status"]) == {"ok"}
    ops = client[(client["metric"] == "throughput") & (client["stat"] == "mean")]
    assert len(ops) == 4 and ops["value"].between(1_000, 10_000_000).all(), ops
    p99 = client[(client["metric"] == "latency") & (client["stat"] == "p99")]
    assert len(p99) == 4 and p99["value"].between(0.001, 1_000).all(), p99
    assert (ops["unit"] == "ops/s").all() and (p99["unit"] == "ms").all()
    resources = table[table["source"] == "prometheus"]
    cpu = resources[(resources["metric"] == "cpu_cores") & (resources["stat"] == "max")]
    assert len(cpu) == 2 and (cpu["value"] > 0).all(), resources
    rss = resources[(resources["metric"] == "rss_bytes") & (resources["stat"] == "max")]
    assert (rss["value"] > 1e6).all()
    node = resources[(resources["metric"] == "node_cpu_busy_cores") & (resources["stat"] == "mean")]
    assert len(node) == 2 and (node["value"] > 0).all()  # the node exporter sidecar
    # efficiency: ops/s per core of the service's own CPU, per command
    derived = table[(table["source"] == "derived") & (table["metric"] == "throughput_per_core")]
    assert len(derived) == 4 and (derived["unit"] == "ops/s per core").all()
    for _, row in derived.iterrows():
        mean_cpu = resources[(resources["point"] == row["point"]) & (resources["metric"] == "cpu_cores")
                                        & (resources["stat"] == "mean")]["value"].item()  # fmt: skip
        ops_row = ops[(ops["point"] == row["point"]) & (ops["command"] == row["command"])]["value"].item()
        assert mean_cpu > 0 and row["value"] == pytest.approx(ops_row / mean_cpu)

    for name in ("clients", "resources"):
        for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
            figure = results / "figures" / "redis-e2e" / f"{name}.{ext}"
            assert figure.read_bytes().startswith(magic)
    assert json.loads((results / "redis-e2e/service/stopped.json").read_text())["how"] == "SIGTERM"
    assert (results / "monitoring/stopped.json").exists()
    assert not (results / "redis-e2e/service/handle.json").exists()  # temp: the deployment is over

    password = secret_found_nowhere_else(results, "redis-e2e", holders=("redis.conf",))

    manifest = json.loads((results / "manifest.json").read_text())
    assert len(manifest["git"]["commit"]) == 40 and isinstance(manifest["git"]["dirty"], bool)
    assert (
        manifest["software"]["packages"]["snakemake"] and "redis-benchmark" in manifest["software"]["tools"]
    )
    copied = {i["path"]: i for i in manifest["inputs"]}
    assert {"recipes/services/redis.yaml", "recipes/clients/redis-benchmark.yaml"} <= set(copied)
    for item in manifest["inputs"]:
        assert hashlib.sha256((results / item["copy"]).read_bytes()).hexdigest() == item["sha256"]
    assert {s["kind"] for s in manifest["services"]} == {"prometheus", "redis"}
    assert [p["status"] for p in manifest["points"]] == ["ok", "ok"] and manifest["hosts"]
    assert manifest["started_at"] < manifest["ended_at"]

    # the archive: raw results and provenance, never a secret or a 0600 file
    archive = workspace / "run.tar.gz"
    packed = subprocess.run([str(BIN / "aibench"), "archive", str(results), "-o", str(archive)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert "run/manifest.json" in names and "run/redis-e2e/points/clients-1_r0/raw.csv.gz" in names
        assert not any(n.endswith(("secrets.env", "redis.conf")) or "/data/" in n for n in names)
        assert all(password.encode() not in tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())

    # paper tables from the archive alone equal the run's own table
    paper = workspace / "paper"
    done = snakemake_paper(archive, paper)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (paper / "tables" / "summary.csv").read_bytes() == (results / "summary.csv").read_bytes()
    assert (paper / "figures" / "redis-e2e" / "clients.pdf").read_bytes().startswith(b"%PDF")

    report = workspace / "report.html"
    done = snakemake(config, "--report", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    assert report.stat().st_size > 10_000
    assert password.encode() not in report.read_bytes()  # nor in the report (which embeds the logs)

    again = snakemake(config, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_service_sweep_end_to_end(make_config, workspace: Path, no_leftovers: float) -> None:
    """Redis io_threads [1, 2] x clients [10, 50]: each io-threads value its own Redis, deployed after
    the other has stopped, the whole client sweep run against each; summary.csv names the deployment
    and its value on every row; a rerun has nothing to do."""
    swept = {"service_sweep": {"io_threads": [1, 2]}, "sweep": {"clients": [10, 50]}}
    config = make_config({**SMALL, "client_params": {"tests": "get", "requests": 20000}, **swept})
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv")
    client = table[(table["source"] == "client") & (table["metric"] == "throughput")]
    measured = sorted(zip(client["deployment"], client["service.io_threads"], client["point"], strict=True))
    assert measured == [(f"io_threads-{n}", n, f"clients-{c}_r0") for n in (1, 2) for c in (10, 50)]
    assert set(table["status"]) == {"ok"} and (client["value"] > 1000).all()
    stopped, served = {}, {}
    for threads in (1, 2):
        service = results / "redis-e2e" / f"io_threads-{threads}" / "service"
        assert f"io-threads {threads}\n" in (service / "redis.conf").read_text()  # what Redis ran
        stopped[threads] = json.loads((service / "stopped.json").read_text())
        windows = [json.loads(p.read_text())["window"] for p in service.parent.glob("points/*/summary.json")]
        assert len(windows) == 2
        served[threads] = (min(w["start"] for w in windows), max(w["end"] for w in windows))
        # each point ran while its own deployment was up
        assert stopped[threads]["ready"]["ready_at"] <= served[threads][0]
        assert served[threads][1] <= stopped[threads]["stopped_at"]
    assert stopped[1]["stopped_at"] <= stopped[2]["ready"]["ready_at"]  # one after the other
    assert stopped[1]["handle"] != stopped[2]["handle"]
    resources = table[(table["source"] == "prometheus") & (table["metric"] == "cpu_cores")]
    assert set(resources["deployment"]) == {"io_threads-1", "io_threads-2"}  # each watched on its own
    assert (results / "figures" / "redis-e2e" / "clients.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((results / "manifest.json").read_text())
    assert {s["directory"] for s in manifest["services"]} == {
        "monitoring", "redis-e2e/io_threads-1/service", "redis-e2e/io_threads-2/service"
    }
    again = snakemake(config, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_dry_run_starts_nothing_and_rulegraph_renders(
    make_config, workspace: Path, no_leftovers: float
) -> None:
    config = make_config(SMALL)
    done = snakemake(config, "-n")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    for rule in (
        "deploy_service",
        "wait_endpoint",
        "run_client",
        "scrape_metrics",
        "stop_service",
        "aggregate",
        "plot_sweep",
        "deploy_monitor",
    ):
        assert rule in out
    assert not (workspace / "results").exists()
    graph = snakemake(config, "--rulegraph")
    assert graph.returncode == 0 and graph.stdout.lstrip().startswith("digraph")
    assert "run_client" in graph.stdout and "->" in graph.stdout


def test_bad_recipe_stops_before_anything(make_config, workspace: Path, no_leftovers: float) -> None:
    config = make_config({**SMALL, "sweep": {"clients": [1, 0]}})
    done = snakemake(config)
    assert done.returncode != 0
    expected = (
        f"{workspace}/recipes/experiments/redis-e2e.yaml: "
        "field 'sweep.clients[1]': 0 is less than the minimum of 1"
    )

    assert expected in done.stderr + done.stdout
    assert not (workspace / "results").exists()


def test_failed_point_keeps_measured_data_and_leaves_no_process(
    make_config, workspace: Path, no_leftovers: float
) -> None:
    client = workspace / "recipes" / "clients" / "redis-benchmark-short.yaml"
    client.write_text("kind: redis-benchmark\ntimeout_s: 2\n")
    config = make_config(
        {
            **SMALL,
            "client": "redis-benchmark-short",
            "client_params": {"tests": "get", "clients": 1},
            "sweep": {"requests": [2000, 100000000]},
        }
    )
    done = snakemake(config, "--keep-going")
    assert done.returncode != 0
    assert "ran past its time limit of 2 s" in done.stderr + done.stdout
    points = workspace / "results" / "redis-e2e" / "points"
    assert json.loads((points / "requests-2000_r0" / "summary.json").read_text())["status"] == "ok"
    hung = points / "requests-100000000_r0" / "summary.json"  # kept (keep-incomplete), marked incomplete
    assert not hung.exists() or json.loads(hung.read_text())["status"] == "failed"
    attempt = json.loads((points / "requests-100000000_r0" / "attempts" / "1" / "summary.json").read_text())
    assert attempt["status"] == "failed" and "ran past its time limit of 2 s" in attempt["error"]
    assert "stopped leftover service" in done.stdout + done.stderr


def test_llm_experiment_end_to_end(make_config, workspace: Path, no_leftovers: float) -> None:
    experiment = {
        "service": "llamacpp",
        "client": "llm",
        "client_params": {"requests": 2, "max_tokens": 4, "warmup_requests": 1, "slo_ttft_ms": 5000},
        "sweep": {"concurrency": [1, 2]},
    }
    config = make_config(experiment, name="llm-e2e")
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv")
    client = table[table["source"] == "client"]
    assert set(client["status"]) == {"ok"}
    for metric in ("ttft", "tpot", "itl", "e2el", "output_tokens"):
        values = client[(client["metric"] == metric) & (client["stat"] == "p99")]["value"]
        assert len(values) == 2 and (values > 0).all(), metric
    errors = client[(client["metric"] == "error_rate") & (client["stat"] == "mean")]["value"]
    assert len(errors) == 2 and (errors == 0).all()  # a point with failed requests is still "ok"
    tokens = client[(client["metric"] == "output_token_throughput")]["formula"]
    assert tokens.str.contains("tokens_from=usage").all()  # llama-server streams its count
    # the server's own view per point, from its /metrics scraped through the key-holding relay
    server = table[table["source"] == "server"]
    for metric in ("server_requests_running", "server_output_token_throughput", "server_tpot"):
        assert set(server[server["metric"] == metric]["point"]) == set(client["point"]), metric
    for name in ("concurrency", "ttft_cdf"):
        assert (results / "figures" / "llm-e2e" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    secret_found_nowhere_else(results, "llm-e2e")


def test_one_point_loaded_from_two_client_nodes(make_config, workspace: Path, no_leftovers: float) -> None:
    """client_nodes: 2 locally: two agent processes, each measuring its clock against the coordinator's,
    start at one instant and send their share; the point's records are both shares merged (a `node`
    column), its metrics computed from all of them, and nothing of the agents is left."""
    experiment = {
        "service": "llamacpp",
        "client": "llm",
        "client_nodes": 2,
        "client_params": {"mode": "closed", "concurrency": 3, "requests": 7, "max_tokens": 4,
                          "warmup_requests": 2},
    }  # fmt: skip
    config = make_config(experiment, name="llm-nodes")
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    (point,) = list((workspace / "results" / "llm-nodes" / "points").glob("*"))
    summary = json.loads((point / "summary.json").read_text())
    assert summary["status"] == "ok", summary["error"]
    nodes = summary["client"]["tool"]["nodes"]
    assert sorted(n["rank"] for n in nodes) == [0, 1] and summary["client"]["tool"]["client_nodes"] == 2
    parts = [json.loads((point / "nodes" / "parts" / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(p["records"]) for p in parts] == [5, 4]  # 4+1 and 3+1 of 7 requests + 2 warm-up
    raw = pd.read_csv(point / "raw.csv.gz")
    assert len(raw) == sum(len(p["records"]) for p in parts) and (raw["status"] == "ok").all()
    assert raw.groupby("node").size().to_dict() == {0: 5, 1: 4}
    metrics = {(m["name"], m["stat"]): m for m in summary["metrics"]}
    assert metrics[("requests", "count")]["value"] == 7  # the measured requests of both nodes
    assert metrics[("client_nodes", "count")]["value"] == 2
    assert 0 <= metrics[("clock_offset_max", "max")]["value"] < 50  # one machine's clock: ~0
    # the window is on the coordinator's clock, from the agreed start, and holds every request
    window = summary["window"]
    assert window["duration_s"] >= (raw["end_s"].max() - 0.05)
    assert (point / "nodes" / "clock.key").stat().st_mode & 0o077 == 0


def test_redis_loaded_from_two_client_nodes(make_config, workspace: Path, no_leftovers: float) -> None:
    """client_nodes: 2 with redis-benchmark, which gives percentiles per run only: summary.csv holds each
    node's numbers (column node) and the throughputs summed (node "sum"), never averaged; the figures
    are drawn from that table."""
    swept = {"client_nodes": 2, "sweep": {"clients": [4, 10]}}
    config = make_config({**SMALL, "client_params": {"tests": "get,set", "requests": 20000}, **swept},
                         name="redis-nodes")  # fmt: skip
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv", dtype={"node": str})
    client = table[table["source"] == "client"]
    assert set(client["status"]) == {"ok"}
    for point, frame in client.groupby("point"):
        rate = frame[(frame["metric"] == "throughput")].set_index(["command", "node"])["value"]
        for command in ("GET", "SET"):
            assert rate[(command, "sum")] == pytest.approx(rate[(command, "0")] + rate[(command, "1")])
        p99 = frame[(frame["metric"] == "latency") & (frame["stat"] == "p99")]
        assert sorted(p99["node"]) == ["0", "0", "1", "1"], point  # per node only: no "sum" percentile
    for path in (results / "redis-nodes" / "points").glob("*/raw.csv.gz"):
        raw = pd.read_csv(path)
        assert sorted(raw["node"]) == [0, 0, 1, 1] and set(raw["test"]) == {"GET", "SET"}
    assert (results / "figures" / "redis-nodes" / "clients.png").read_bytes().startswith(b"\x89PNG")


def test_a_failing_client_node_fails_its_point_and_leaves_nothing(
    make_config, workspace: Path, no_leftovers: float
) -> None:
    """The agents cannot run their shares (redis-benchmark is refused: more connections than the
    server's maxclients): the point fails naming a client node, the run stops, and no agent, load or
    service is left (no_leftovers counts the agents too)."""
    swept = {"client_nodes": 2, "service_params": {"maxclients": 12}, "sweep": {"clients": [40]}}
    config = make_config({**SMALL, "client_params": {"tests": "get", "requests": 2000}, **swept},
                         name="redis-nodes-fail")  # fmt: skip
    done = snakemake(config)
    assert done.returncode != 0
    (point,) = list((workspace / "results" / "redis-nodes-fail" / "points").glob("*"))
    attempt = json.loads((point / "attempts" / "1" / "summary.json").read_text())
    assert attempt["status"] == "failed" and "client node" in attempt["error"], attempt["error"]


def test_two_replicas_share_one_load(make_config, workspace: Path, no_leftovers: float) -> None:
    """replicas: 2 of the local LLM server: two llama-server processes on their own ports, each with
    its own API key; the point's requests alternate between them (recorded per request), and
    Prometheus watched the exporters of both."""
    experiment = {
        "service": "llamacpp",
        "client": "llm",
        "replicas": 2,
        "client_params": {"mode": "closed", "concurrency": 2, "requests": 6, "max_tokens": 4,
                          "warmup_requests": 2},
    }  # fmt: skip
    config = make_config(experiment, name="llm-replicas")
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results" / "llm-replicas"
    services = [results / f"service-r{n}" for n in (0, 1)]
    endpoints = [json.loads((s / "endpoint.json").read_text()) for s in services]
    assert endpoints[0]["port"] != endpoints[1]["port"]
    keys = [read_secrets(s / "secrets.env")["LLM_API_KEY"] for s in services]
    assert keys[0] != keys[1]  # credentials per service job
    (point,) = list(results.glob("points/*"))
    summary = json.loads((point / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["client"]["tool"]["replicas"] == 2
    assert [r["deployment"] for r in summary["service"]["replicas"]] == [e["deployment"] for e in endpoints]
    raw = pd.read_csv(point / "raw.csv.gz")
    assert raw["replica"].tolist() == [0, 1] * 4 and (raw["status"] == "ok").all()
    scraped = sum(sum(x["scraped"] for x in e["exporters"]) for e in endpoints)
    up = pd.read_csv(point / "metrics.csv").query("series == 'targets_up'")["value"]
    assert len(up) and (up == scraped).all()  # every exporter of both replicas, over the window
    for service in services:
        assert json.loads((service / "stopped.json").read_text())["how"] == "SIGTERM"
    for key in keys:  # neither replica's key left its 0600 file
        for path in results.rglob("*"):
            if path.is_file() and path.name != "secrets.env":
                assert key.encode() not in path.read_bytes(), path


def test_chroma_experiment_end_to_end(make_config, workspace: Path, no_leftovers: float) -> None:
    """Chroma behind its token gateway through the whole DAG: real text embeddings, ef_search swept,
    recall and QPS per point in the table, the recall-vs-QPS figure, the token in no result file."""
    experiment = {
        "service": "chroma",
        "client": "chroma",
        "client_params": {
            "dataset": "minilm-python-docs",
            "space": "cosine",
            "count": 0,
            "requests": 50,
            "max_neighbors": 4,
            "ef_construction": 8,
        },
        "sweep": {"ef_search": [1, 64]},
    }
    config = make_config(experiment, name="vec-e2e")
    done = snakemake(config)
    assert done.returncode == 0, done.stderr[-4000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv")
    client = table[table["source"] == "client"]
    assert set(client["status"]) == {"ok"}
    recall = client[(client["metric"] == "recall") & (client["stat"] == "mean")].set_index("param_ef_search")
    assert 0 < recall.loc[1, "value"] < recall.loc[64, "value"] <= 1  # a longer search finds more
    qps = client[(client["metric"] == "queries_per_s")]["value"]
    assert len(qps) == 2 and (qps > 0).all()
    assert (results / "figures" / "vec-e2e" / "ef_search.png").read_bytes().startswith(b"\x89PNG")
    secret_found_nowhere_else(results, "vec-e2e")
