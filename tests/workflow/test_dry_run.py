"""`snakemake -n` plans the workflow for every shape of monitoring (off, on, with Grafana) and starts
nothing: each rule's parameters are evaluated only for the jobs that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import snakemake

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize(
    ("monitoring", "rules"),
    [
        ({"enabled": False}, {"deploy_service"}),
        ({"enabled": True}, {"deploy_service", "deploy_monitor"}),
        ({"enabled": True, "grafana": True}, {"deploy_service", "deploy_monitor", "deploy_grafana"}),
    ],
    ids=["off", "on", "grafana"],
)
def test_dry_run_plans_every_monitoring_shape(
    workspace: Path, make_config: object, monitoring: dict, rules: set[str]
) -> None:
    config = make_config(  # type: ignore[operator]
        {"service": "redis", "client": "redis-benchmark", "sweep": {"clients": [1, 2]}}
    )
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "monitoring": monitoring}))
    done = snakemake(config, "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    for rule in rules:
        assert f"rule {rule}:" in output, rule
    if not monitoring["enabled"]:
        assert "rule deploy_monitor:" not in output
    assert not (workspace / "results").exists()


def _deploy_waits_for_a_stop(dag: str) -> dict[str, bool]:
    """From `snakemake --dag`: per deployment, whether its deploy_service job depends on a stop_service."""
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]*)"', dag, re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dag, re.M)
    stops = {n for n, label in labels.items() if label.startswith("stop_service")}
    return {
        label.split("service: ")[1].removesuffix("/service"): any(a in stops and b == n for a, b in edges)
        for n, label in labels.items()
        if label.startswith("deploy_service")
    }


@pytest.mark.parametrize(("parallel", "waits"), [(1, True), (2, False)])
def test_a_service_sweep_plans_one_deployment_chain_per_combination(
    workspace: Path, make_config: object, parallel: int, waits: bool
) -> None:
    """io_threads [1, 2] x clients [10, 50]: two deploy/wait/prepare/stop chains, four loads; the second
    deployment waits for the first one's stop unless parallel_deployments lets both run at once."""
    config = make_config(  # type: ignore[operator]
        {"service": "redis", "client": "redis-benchmark", "service_sweep": {"io_threads": [1, 2]},
         "sweep": {"clients": [10, 50]}, "parallel_deployments": parallel}
    )  # fmt: skip
    done = snakemake(config, "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, re.M))
    assert {k: counts[k] for k in ("deploy_service", "wait_endpoint", "prepare_client", "stop_service",
                                   "run_client")} == {"deploy_service": "2", "wait_endpoint": "2",
                                                      "prepare_client": "2", "stop_service": "2",
                                                      "run_client": "4"}  # fmt: skip
    results = workspace / "results"
    for unit in ("io_threads-1", "io_threads-2"):
        for point in ("clients-10_r0", "clients-50_r0"):
            assert f"{results}/redis-e2e/{unit}/points/{point}/summary.json" in output
    assert "1 experiments, 2 deployments, 4 points" in output
    dag = snakemake(config, "--dag", timeout=300)
    assert dag.returncode == 0, dag.stderr[-3000:]
    waiting = _deploy_waits_for_a_stop(dag.stdout)
    assert waiting == {"redis-e2e/io_threads-1": False, "redis-e2e/io_threads-2": waits}
    assert not results.exists()


def test_swept_replicas_plan_a_service_job_per_replica_and_the_scaling_figure(
    workspace: Path, make_config: object
) -> None:
    """replicas [1, 2] of the local LLM server: three service jobs (one, then two at once), one load per
    deployment and point, and the scaling figure beside the sweep figures."""
    config = make_config(  # type: ignore[operator]
        {"service": "llamacpp", "client": "llm", "service_sweep": {"replicas": [1, 2]},
         "sweep": {"concurrency": [2]}}, name="llm-scale",
    )  # fmt: skip
    done = snakemake(config, "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, re.M))
    assert (counts["deploy_service"], counts["stop_service"], counts["run_client"]) == ("3", "3", "2")
    assert counts["plot_scaling"] == "1"
    results = workspace / "results" / "llm-scale"
    for service in ("replicas-1/service", "replicas-2/service-r0", "replicas-2/service-r1"):
        assert f"{results}/{service}/stopped.json" in output
    assert f"{workspace}/results/figures/llm-scale/scaling.png" in output


def test_client_nodes_points_are_coordinated_from_the_login_node(
    workspace: Path, make_config: object
) -> None:
    """An experiment with client_nodes runs its points through run_client_nodes (a login-node rule that
    submits the nodes' job), every other experiment's through run_client, in one plan."""
    single = {"service": "redis", "client": "redis-benchmark"}
    (workspace / "recipes" / "experiments" / "single.yaml").write_text(yaml.safe_dump(single))
    config = make_config(  # type: ignore[operator]
        {**single, "client_nodes": 2, "sweep": {"clients": [4, 8]}}, name="nodes"
    )
    both = {**yaml.safe_load(config.read_text()), "experiments": ["nodes", "single"]}
    config.write_text(yaml.safe_dump(both))
    done = snakemake(config, "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, re.M))
    assert (counts["run_client_nodes"], counts["run_client"]) == ("2", "1"), counts
