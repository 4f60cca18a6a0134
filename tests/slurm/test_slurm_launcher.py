"""The slurm launcher against the real local SLURM cluster: sbatch, squeue/sacct, scancel; CLI status/stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from aibench import lifecycle
from aibench.contracts import DeploymentSpec, Placement
from aibench.errors import ServiceError
from aibench.files import read_json
from aibench.probes import redis_ping
from aibench.recipes import load_service
from aibench.secrets import read_secrets
from tests.conftest import ROOT
from tests.slurm.conftest import compute_nodes, node_address, queued_jobs, sacct_jobs, stop_when_started

REDIS = load_service(ROOT / "recipes" / "services" / "redis.yaml").params
OPTIONS = {
    "resources": {
        "account": "aibench",
        "partition": "cpu",
        "qos": "default",
        "cpus": 1,
        "mem_mb": 500,
        "time_min": 10,
    }
}
ON_SLURM = Placement(launcher="slurm", launcher_options=OPTIONS, bind_host="auto")


def aibench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aibench.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.usefixtures("local_slurm")
def test_service_as_slurm_job_status_and_stop(tmp_path: Path, no_leftovers: float) -> None:
    results = tmp_path / "results"
    service_dir = results / "sl" / "service"
    handle = lifecycle.deploy(service_dir, DeploymentSpec("sl", "redis", REDIS, ON_SLURM)).to_json()
    assert handle["job_id"].isdigit() and "pid" not in handle
    ready = lifecycle.wait_ready(service_dir, timeout_s=60, interval_s=0.1, queue_timeout_s=120)
    password = read_secrets(service_dir / "secrets.env")["REDIS_PASSWORD"]
    # the job ran on a compute node and bound that node's address on the test network: reached from here
    assert ready["node"] in compute_nodes() and ready["host"] == node_address(ready["node"])
    redis_ping(ready["host"], ready["port"], password)
    script = (service_dir / "service.sbatch").read_text()
    assert script.startswith("#!/bin/bash -l\n") and "#SBATCH --partition=cpu" in script
    assert "#SBATCH --qos=default" in script and "#SBATCH --account=aibench" in script
    assert password not in script

    status = aibench("status", str(results))
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("sl "))
    assert "slurm" in row and handle["job_id"] in row and str(ready["port"]) in row and "running" in row

    stop = aibench("stop", str(results), "--all")
    assert stop.returncode == 0 and "scancel" in stop.stdout, stop.stdout + stop.stderr
    assert not queued_jobs(f"{handle['job_id']} ")
    assert "SIGTERM received" in (service_dir / "service.log").read_text()  # it stopped cleanly
    assert lifecycle.stop(service_dir)["how"] == "already ended"


@pytest.mark.usefixtures("local_slurm")
def test_hung_service_job_is_cancelled_with_log_tail(tmp_path: Path, no_leftovers: float) -> None:
    service_dir = tmp_path / "hung" / "service"
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    handle = lifecycle.deploy(service_dir, DeploymentSpec("hung", "redis", REDIS, ON_SLURM)).to_json()
    stop_when_started(service_dir)  # fault injection: the server hangs (SIGSTOP) as soon as it runs
    with pytest.raises(ServiceError) as info:
        lifecycle.wait_ready(service_dir, timeout_s=3, interval_s=0.1, queue_timeout_s=120)
    assert "not ready after 3 s" in str(info.value)
    assert f"last lines of {service_dir / 'service.log'}" in str(info.value)
    assert "redis started, pid" in str(info.value)
    assert "service stopped: scancel" in str(info.value)
    assert not queued_jobs(f"{handle['job_id']} ")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {j["id"]: j["state"] for j in sacct_jobs(since)}
        if states.get(handle["job_id"], "").startswith("CANCELLED"):
            break
        time.sleep(0.5)
    assert states.get(handle["job_id"], "").startswith("CANCELLED"), states
    assert read_json(service_dir / "stopped.json")["how"].startswith("scancel")


@pytest.mark.usefixtures("local_slurm")
def test_a_client_nodes_job_left_behind_is_cancelled_by_stop(tmp_path: Path) -> None:
    """A coordinator killed while its client nodes' job is queued or running leaves the job's handle
    (nodes/job.json): `aibench stop` cancels that job (what the workflow's error handler calls too)."""
    from aibench.clients.fanout import SlurmAgents
    from aibench.contracts import ClientNodes
    from aibench.rundir import NodesDir

    where = NodesDir(tmp_path / "results" / "cn" / "points" / "p_r0" / "nodes")
    where.reset()
    spec = ClientNodes(nodes=2, placement=ON_SLURM, image=str(ROOT / "envs" / "aibench.sif"))
    service = tmp_path / "results" / "cn" / "service"
    agents = SlurmAgents(where, spec, "aibench-cn-p_r0-clients", [str(service)], [])
    agents.start()  # its agents wait for a clock that never comes: the job would run until its --time
    script = where.job_script.read_text()
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --ntasks-per-node=1\n" in script
    assert "exec srun --kill-on-bad-exit=1 apptainer exec --cleanenv" in script
    assert f"--bind {service} " in script and f"--bind {where.path} " in script  # results on any path
    job_id = read_json(where.job)["job_id"]
    assert queued_jobs(job_id)
    stopped = aibench("stop", str(tmp_path / "results"), "--experiment", "cn")
    assert stopped.returncode == 0, stopped.stderr
    assert f"client nodes' job {job_id} (scancel" in stopped.stdout
    assert not queued_jobs(f"{job_id} ") and not where.job.exists()
    time.sleep(3)  # the next test counts the jobs sacct has from 2 s before it began: not this one
