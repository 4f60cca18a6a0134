"""llama.cpp's server image on the MeluXina-faithful cluster: the llamacpp kind as a MeluXina user runs it.

Under `snakemake --profile profiles/meluxina` the kind runs ``/app/llama-server`` (the image's
ENTRYPOINT, which apptainer exec ignores) from docker://ghcr.io/ggml-org/llama.cpp:server-cuda-b11459.
Here that image is its stand-in (envs/images/llama.cpp-server-cuda-b11459.toml: llama.cpp b11549's CPU
server from the xllamacpp wheel behind llama-server's own flags, with the image's LLAMA_ARG_HOST=0.0.0.0),
on a `cpu` partition node. What must hold: the server listens on its node's address (the --host flag
wins over the image's 0.0.0.0), the key reaches it through the env file only, the service job's probe
and the clients on the node get through with it, and the run's Prometheus, on another node, scrapes the
server's own /metrics through the relay that holds the key, so each point has its server-side figures.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aibench.secrets import read_secrets
from tests.slurm.conftest import compute_nodes
from tests.slurm.test_meluxina_path import run_meluxina_profile

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("local_slurm", "apptainer_images")]

EXPERIMENT = {
    "service": "llamacpp",
    "client": "llm",
    # long enough at concurrency 4 (two rounds of 4 x 32 tokens, ~3 s) for 1 s scrapes to see the
    # server busy: with 8 tokens the point lasted about a second and a scrape could miss it
    "client_params": {"max_tokens": 32, "requests": 8, "mode": "closed"},
    "sweep": {"concurrency": [1, 4]},
}


def test_llama_server_image_serves_and_is_scraped_across_nodes(workspace: Path, no_leftovers: float) -> None:
    recipes = workspace / "recipes"
    (recipes / "experiments" / "llamacpp-image.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    config = workspace / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiments": ["llamacpp-image"], "results": str(workspace / "results"), "recipes": str(recipes),
        "monitoring": {"enabled": True, "grafana": False},
    }))  # fmt: skip
    calls = workspace / "apptainer-calls.jsonl"
    done = run_meluxina_profile(workspace, config, APPTAINER_STANDIN_LOG=str(calls))
    assert done.returncode == 0, done.stderr[-6000:]
    results = workspace / "results"
    service = results / "llamacpp-image" / "service"

    # the image's /app/llama-server, with llama-server's flags, on the node's address, key off argv
    endpoint = json.loads((service / "endpoint.json").read_text())
    assert endpoint["node"] in compute_nodes() and not endpoint["host"].startswith(("127.", "0.0.0.0"))
    key = read_secrets(service / "secrets.env")["LLM_API_KEY"]
    execs = [json.loads(line) for line in calls.read_text().splitlines() if '"exec"' in line]
    servers = [c for c in execs if "/app/llama-server" in c]
    assert servers, execs
    argv = servers[0][servers[0].index("/app/llama-server") :]
    assert argv[argv.index("--host") + 1] == endpoint["host"] and "--metrics" in argv
    assert "--nv" not in servers[0]  # the recipe asks for no GPU
    assert not [c for c in execs if key in " ".join(c)]
    assert "listening on http://" + endpoint["host"] in (service / "service.log").read_text()

    # both points measured, with the server's own figures beside the client's
    table = pd.read_csv(results / "summary.csv")
    client = table[(table["source"] == "client") & (table["metric"] == "output_token_throughput")]
    assert len(client) == 2 and (client["value"] > 0).all()
    errors = table[(table["metric"] == "error_rate") & (table["stat"] == "mean")]["value"]
    assert len(errors) == 2 and (errors == 0).all()  # every request answered, none lost
    server = table[table["source"] == "server"]
    by_point = server[server["metric"] == "server_requests_running"].groupby("point")["value"].max()
    assert len(by_point) == 2 and (by_point > 0).all(), server
    tokens = server[server["metric"] == "server_output_token_throughput"]
    assert len(tokens) == 2 and (tokens["value"] > 0).all()
    relay_log = (service / "exporter-server.log").read_text()
    assert key not in relay_log and key not in (results / "summary.csv").read_text()


def test_two_replicas_serve_one_load_as_two_service_jobs(workspace: Path, no_leftovers: float) -> None:
    """replicas: 2 under the MeluXina profile: two service jobs (sacct), each its image's llama-server on
    its node's address with its own key; the point's requests alternate between them, every one
    answered; the stop ends both jobs."""
    from tests.slurm.conftest import sacct_jobs

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    recipes = workspace / "recipes"
    experiment = {**EXPERIMENT, "replicas": 2, "sweep": {"concurrency": [2]}}
    (recipes / "experiments" / "llamacpp-replicas.yaml").write_text(yaml.safe_dump(experiment))
    config = workspace / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiments": ["llamacpp-replicas"], "results": str(workspace / "results"), "recipes": str(recipes),
        "monitoring": {"enabled": False},
    }))  # fmt: skip
    done = run_meluxina_profile(workspace, config)
    assert done.returncode == 0, done.stderr[-6000:]
    results = workspace / "results" / "llamacpp-replicas"
    stopped = [json.loads((results / f"service-r{n}" / "stopped.json").read_text()) for n in (0, 1)]
    ids = [s["handle"]["job_id"] for s in stopped]
    jobs = {j["id"]: j for j in sacct_jobs(since)}
    assert len(set(ids)) == 2 and all(jobs[i]["state"].startswith("CANCELLED") for i in ids)
    endpoints = [json.loads((results / f"service-r{n}" / "endpoint.json").read_text()) for n in (0, 1)]
    assert all(e["node"] in compute_nodes() for e in endpoints)
    keys = {read_secrets(results / f"service-r{n}" / "secrets.env")["LLM_API_KEY"] for n in (0, 1)}
    assert len(keys) == 2
    (point,) = list(results.glob("points/*"))
    raw = pd.read_csv(point / "raw.csv.gz")
    assert raw["replica"].tolist() == [i % 2 for i in range(len(raw))] and (raw["status"] == "ok").all()
    summary = json.loads((point / "summary.json").read_text())
    assert [r["endpoint"] for r in summary["service"]["replicas"]] == [
        f"{e['host']}:{e['port']}" for e in endpoints
    ]


def test_one_point_loaded_from_two_client_nodes(workspace: Path, no_leftovers: float) -> None:
    """client_nodes: 2 under the MeluXina profile: the login-node rule submits one job of two nodes
    (sacct: NNodes 2), whose batch script srun's an agent per node in the rule image; each agent measures
    its clock against the login host's and registers from its own node; the point's records are both
    nodes' requests, merged (their count the sum of both nodes'), with a `node` column."""
    from tests.slurm.conftest import sacct_jobs

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    recipes = workspace / "recipes"
    experiment = {**EXPERIMENT, "client_nodes": 2, "sweep": {"concurrency": [2]},
                  "client_params": {**EXPERIMENT["client_params"], "warmup_requests": 2}}  # fmt: skip
    (recipes / "experiments" / "llamacpp-nodes.yaml").write_text(yaml.safe_dump(experiment))
    config = workspace / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiments": ["llamacpp-nodes"], "results": str(workspace / "results"), "recipes": str(recipes),
        "monitoring": {"enabled": False},
    }))  # fmt: skip
    done = run_meluxina_profile(workspace, config)
    assert done.returncode == 0, done.stderr[-6000:]
    (point,) = list((workspace / "results" / "llamacpp-nodes" / "points").glob("*"))
    summary = json.loads((point / "summary.json").read_text())
    assert summary["status"] == "ok", summary["error"]
    nodes = summary["client"]["tool"]["nodes"]
    hosts = {n["host"] for n in nodes}
    assert len(hosts) == 2 and hosts <= set(compute_nodes())  # one agent on each of two nodes
    parts = [json.loads((point / "nodes" / "parts" / f"{rank}.json").read_text()) for rank in (0, 1)]
    raw = pd.read_csv(point / "raw.csv.gz")
    assert len(raw) == sum(len(p["records"]) for p in parts) == 8 + 2 and (raw["status"] == "ok").all()
    assert raw.groupby("node").size().to_dict() == {0: 5, 1: 5}
    clock = json.loads((point / "nodes" / "clock.json").read_text())
    assert clock["host"] not in ("127.0.0.1", "0.0.0.0")  # the login host's address on the nodes' network
    jobs = [j for j in sacct_jobs(since) if j["name"].endswith("-clients")]
    assert len(jobs) == 1 and jobs[0]["state"] == "COMPLETED", jobs
    argv = ["scontrol", "show", "hostnames", jobs[0]["nodes"]]
    listed = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    assert set(listed) == hosts  # the job's two nodes are where the agents ran
    assert not (point / "nodes" / "job.json").exists()  # the job is over and forgotten
