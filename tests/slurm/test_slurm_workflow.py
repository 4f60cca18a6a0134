"""The Redis experiment end to end through the slurm executor plugin and the real local SLURM cluster."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import snakemake
from tests.slurm.conftest import queued_jobs, sacct_jobs, stop_when_started

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("local_slurm")]

SWEEP = {
    "service": "redis",
    "client": "redis-benchmark",
    "client_params": {"tests": "get,set", "requests": 20000},
    "sweep": {"clients": [1, 8]},
}


def test_redis_through_slurm(make_config, workspace: Path, no_leftovers: float) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    config = make_config(SWEEP, name="redis-slurm")
    done = snakemake(config, profile="profiles/slurm-test", timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv")
    ops = table[(table["metric"] == "throughput") & (table["stat"] == "mean")]
    assert len(ops) == 4 and ops["value"].between(1_000, 10_000_000).all()
    assert (table[table["source"] == "prometheus"]["metric"] == "cpu_cores").any()

    handle = json.loads((results / "redis-slurm/service/stopped.json").read_text())["handle"]
    assert handle["launcher"] == "slurm"
    jobs = sacct_jobs(since)
    service_jobs = [j for j in jobs if j["id"] == handle["job_id"]]
    assert service_jobs and service_jobs[0]["state"].startswith("CANCELLED")  # stopped by stop_service
    monitor = json.loads((results / "monitoring/stopped.json").read_text())["handle"]
    client_jobs = [j for j in jobs if j["id"] not in (handle["job_id"], monitor["job_id"])]
    assert len(client_jobs) == 1, jobs  # both points in one allocation
    assert client_jobs[0]["state"] == "COMPLETED"
    assert client_jobs[0]["nodes"] == service_jobs[0]["nodes"]  # placement: same node
    assert not queued_jobs("aibench-redis-slurm") and not queued_jobs("aibench-monitoring")
    assert not [j for j in queued_jobs() if any(c["id"] in j for c in client_jobs)]


def test_hung_service_fails_the_run_and_is_cancelled(
    make_config, workspace: Path, no_leftovers: float
) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    recipe = workspace / "recipes" / "services" / "redis-quick.yaml"
    recipe.write_text("kind: redis\nreadiness: {timeout_s: 5, interval_s: 0.1}\n")
    config = make_config(
        {**SWEEP, "service": "redis-quick"}, name="redis-hung", monitoring={"enabled": False}
    )
    stop_when_started(workspace / "results" / "redis-hung" / "service", timeout=300)
    done = snakemake(config, profile="profiles/slurm-test", timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "not ready after 5 s" in output
    assert "last lines of" in output and "redis started, pid" in output
    stopped = json.loads((workspace / "results/redis-hung/service/stopped.json").read_text())
    job_id = stopped["handle"]["job_id"]
    assert stopped["how"].startswith("scancel")
    assert not queued_jobs(f"{job_id} ")
    states = {j["id"]: j["state"] for j in sacct_jobs(since)}
    assert states[job_id].startswith("CANCELLED"), states
    assert not (workspace / "results/redis-hung/points").exists()  # no client job was submitted


def test_service_sweep_through_slurm(make_config, workspace: Path, no_leftovers: float) -> None:
    """Redis io_threads [1, 2], linked with the job's cpus [2, 4], x clients [10, 50] on the cluster:
    k = 2 deployments cost 2 service jobs (each with its own --cpus-per-task, as sacct records it) and
    2 client allocations, not one per point; the second service job is submitted after the first has
    stopped; each deployment's points run in one allocation on its service's node."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    swept = {**SWEEP, "client_params": {"tests": "get", "requests": 20000}, "sweep": {"clients": [10, 50]},
             "service_sweep": {"io_threads": [1, 2], "cpus": [2, 4]}, "link": [["io_threads", "cpus"]]}
    config = make_config(swept, name="redis-io")  # (YAML keys sorted: cpus first)
    done = snakemake(config, profile="profiles/slurm-test", timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    results = workspace / "results"
    table = pd.read_csv(results / "summary.csv")
    ops = table[(table["metric"] == "throughput") & (table["stat"] == "mean")]
    assert sorted(zip(ops["deployment"], ops["service.io_threads"], ops["service.cpus"], ops["point"],
                      strict=True)) == [
        (f"cpus-{2 * n}_io_threads-{n}", n, 2 * n, f"clients-{c}_r0") for n in (1, 2) for c in (10, 50)
    ]  # fmt: skip
    jobs = {j["id"]: j for j in sacct_jobs(since)}
    monitor = json.loads((results / "monitoring/stopped.json").read_text())["handle"]["job_id"]
    stopped, allocations = {}, {}
    for n in (1, 2):
        deployment = results / "redis-io" / f"cpus-{2 * n}_io_threads-{n}"
        stopped[n] = json.loads((deployment / "service" / "stopped.json").read_text())
        service_job = jobs[stopped[n]["handle"]["job_id"]]
        assert service_job["state"].startswith("CANCELLED")  # stopped by stop_service
        cpus = subprocess.run(["sacct", "-n", "-X", "-P", "-j", service_job["id"], "-o", "ReqCPUS"],
                              capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        assert cpus == [str(2 * n)]  # the linked resource reached the service job
        assert f"io-threads {n}\n" in (deployment / "service" / "redis.conf").read_text()
        summaries = [json.loads(p.read_text()) for p in deployment.glob("points/*/summary.json")]
        ids = {s["provenance"]["slurm_job_id"] for s in summaries}
        assert len(summaries) == 2 and len(ids) == 1, ids  # the deployment's points: one allocation
        allocations[n] = jobs[ids.pop()]
        assert allocations[n]["state"] == "COMPLETED"
        assert allocations[n]["nodes"] == service_job["nodes"]  # placement: same node
    assert stopped[1]["stopped_at"] <= stopped[2]["ready"]["ready_at"]  # one after the other
    assert jobs[stopped[1]["handle"]["job_id"]]["submit"] <= jobs[stopped[2]["handle"]["job_id"]]["submit"]
    counted = {stopped[1]["handle"]["job_id"], stopped[2]["handle"]["job_id"], monitor}
    counted |= {allocations[1]["id"], allocations[2]["id"]}
    assert set(jobs) == counted, jobs  # 2 service jobs + 2 client allocations + the run's Prometheus
    assert not queued_jobs()
