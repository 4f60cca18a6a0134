"""Ollama's placement and readiness on the MeluXina-faithful cluster, with a CPU server in Ollama's role.

Ollama has no authentication, so it binds its node's 127.0.0.1 only: nothing on the login node can
probe it, and its clients must run on its node. Here the ollama kind runs from the stand-in image of
docker://ollama/ollama (envs/standins/ollama as /bin/ollama: Ollama's commands, environment and API,
with a paced token stream instead of a model) on the `gpu` partition with one GPU, through
`snakemake --profile profiles/meluxina`, as a MeluXina user runs it. What must hold: the service job
probes it on its own node and records that; the client job asks for the service's partition (sbatch
refuses a --nodelist outside the partition asked for), and no GPU; `--nv` goes to the service's
container exactly because its recipe asks for a GPU. Monitoring is off: the GPU exporter needs a real
`nvidia-smi`, which no test node has.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.slurm.conftest import compute_nodes
from tests.slurm.test_meluxina_path import run_meluxina_profile

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("local_slurm", "apptainer_images")]

SERVICE = {
    "kind": "ollama",
    "params": {"model": "llama3.2:1b", "num_parallel": 2, "models_dir": "${AIBENCH_SCRATCH}/ollama"},
    "readiness": {"timeout_s": 120, "interval_s": 0.2},
    "resources": {"cpus": 1, "mem_mb": 1000, "gpus": 1, "partition": "gpu", "time_min": 20},
}
EXPERIMENT = {
    "service": "ollama-cpu",
    "client": "llm",
    "client_params": {
        "api": "ollama-generate",
        "model": "llama3.2:1b",
        "max_tokens": 8,
        "requests": 8,
        "mode": "closed",
    },
    "sweep": {"concurrency": [1, 2]},
}


def test_ollama_is_probed_on_its_node_and_its_client_shares_it(workspace: Path, no_leftovers: float) -> None:
    since = subprocess.run(["date", "+%Y-%m-%dT%H:%M:%S"], capture_output=True, text=True).stdout.strip()
    recipes = workspace / "recipes"
    (recipes / "services" / "ollama-cpu.yaml").write_text(yaml.safe_dump(SERVICE))
    (recipes / "experiments" / "ollama-gpu-node.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    config = workspace / "config.yaml"
    config.write_text(yaml.safe_dump({
        "experiments": ["ollama-gpu-node"], "results": str(workspace / "results"), "recipes": str(recipes),
        "monitoring": {"enabled": False},
    }))  # fmt: skip
    calls = workspace / "apptainer-calls.jsonl"
    done = run_meluxina_profile(workspace, config, APPTAINER_STANDIN_LOG=str(calls))
    assert done.returncode == 0, done.stderr[-6000:]
    results = workspace / "results" / "ollama-gpu-node"

    # bound to its node's loopback, probed there by its own service job
    endpoint = json.loads((results / "service" / "endpoint.json").read_text())
    gpu_node = next(n for n in compute_nodes() if n.startswith("mel2"))
    assert endpoint["host"] == "127.0.0.1" and endpoint["node"] == gpu_node
    node_ready = json.loads((results / "service" / "node_ready.json").read_text())
    assert node_ready["node"] == gpu_node
    assert "ready on its node (probed on 127.0.0.1:" in (results / "service" / "service.log").read_text()

    # the client ran on the same node, in the service's partition, without a GPU of its own
    hosts = {json.loads(p.read_text())["provenance"]["host"] for p in results.glob("points/*/summary.json")}
    assert hosts == {gpu_node}
    table = pd.read_csv(workspace / "results" / "summary.csv")
    tput = table[(table["metric"] == "output_token_throughput") & (table["source"] == "client")]
    assert len(tput) == 2 and (tput["value"] > 0).all(), table.head(30)
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", since, "-o", "JobID,JobName,Partition,QOS,AllocTRES,NodeList"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    jobs = [line.split("|") for line in out.splitlines() if line]
    service = [j for j in jobs if j[1] == "aibench-ollama-gpu-node-ollama"]
    clients = [j for j in jobs if not j[1].startswith("aibench-")]
    assert service and "gres/gpu=1" in service[0][4] and service[0][2] == "gpu", jobs
    assert clients and all(j[2] == "gpu" and "gres/gpu" not in j[4] and j[5] == gpu_node for j in clients)

    # --nv exactly for the service's own container (its recipe asks for a GPU), never for a rule's
    execs = [json.loads(line) for line in calls.read_text().splitlines() if '"exec"' in line]
    ollama = [c for c in execs if any("ollama" in a for a in c) and "serve" in c]
    assert ollama and all("--nv" in c for c in ollama)
    assert [c for c in execs if "aibench.sif" in " ".join(c)] and not [
        c for c in execs if "aibench.sif" in " ".join(c) and "--nv" in c
    ]
