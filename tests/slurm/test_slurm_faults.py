"""Faults on the real local SLURM cluster: a service job cancelled from outside mid-run, and the node
set DOWN under running jobs. What must hold: the run fails with a clear error, nothing is left queued
or running, and what was measured before stays."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import snakemake, wait_until
from tests.slurm.conftest import queued_jobs

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("local_slurm")]

SWEEP = {
    "service": "redis",
    "client": "redis-benchmark",
    "client_params": {"tests": "get", "requests": 150000, "clients": 1},
    "sweep": {"pipeline": [1, 2, 3]},
}


def wait_for(condition, timeout: float = 300, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    wait_until(condition, timeout, interval, "fault trigger")


def node_state(node: str) -> str:
    return subprocess.run(
        ["sinfo", "-h", "-N", "-n", node, "-o", "%T"], capture_output=True, text=True, check=True
    ).stdout.strip()


def after_first_point(points: Path, action) -> threading.Thread:  # type: ignore[no-untyped-def]
    def run() -> None:
        wait_for(lambda: any(points.glob("*/summary.json")))
        time.sleep(0.5)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_service_job_cancelled_from_outside(make_config, workspace: Path, no_leftovers: float) -> None:
    config = make_config(SWEEP, name="cancelled", monitoring={"enabled": False})
    service = workspace / "results" / "cancelled" / "service"

    def cancel() -> None:
        job_id = json.loads((service / "handle.json").read_text())["job_id"]
        subprocess.run(["scancel", job_id], check=True)

    fault = after_first_point(workspace / "results" / "cancelled" / "points", cancel)
    done = snakemake(config, profile="profiles/slurm-test", timeout=900)
    fault.join(5)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    # the next point either lost its server mid-load or found the deployment gone
    assert "point failed" in out or "is no longer running" in out, out[-4000:]
    measured = [
        json.loads(p.read_text()) for p in (workspace / "results/cancelled/points").glob("*/summary.json")
    ]
    assert measured and all(s["status"] == "ok" for s in measured)
    assert not queued_jobs("aibench-cancelled")


def test_node_down_under_running_jobs(make_config, workspace: Path, no_leftovers: float) -> None:
    """The compute node running the service (and, placed beside it, the client job) is taken away."""
    config = make_config(SWEEP, name="nodedown", monitoring={"enabled": False})
    service = workspace / "results" / "nodedown" / "service"
    downed: list[str] = []

    def down() -> None:
        node = json.loads((service / "endpoint.json").read_text())["node"]
        downed.append(node)
        subprocess.run(
            ["scontrol", "update", f"nodename={node}", "state=down", "reason=aibench-test"], check=True
        )

    fault = after_first_point(workspace / "results" / "nodedown" / "points", down)
    try:
        done = snakemake(config, profile="profiles/slurm-test", timeout=900)
        fault.join(5)
    finally:
        for node in downed:
            subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
            wait_for(lambda n=node: node_state(n).startswith(("idle", "mixed", "allocated")), timeout=120)
    assert downed and downed[0].startswith("mel"), downed  # a real compute node went away
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Error in rule" in out or "failed" in out, out[-4000:]
    measured = [
        json.loads(p.read_text()) for p in (workspace / "results/nodedown/points").glob("*/summary.json")
    ]
    assert measured and all(s["status"] == "ok" for s in measured)
    wait_for(lambda: not queued_jobs("aibench-nodedown"), timeout=120)
    # nor is the client job put back in the queue (sbatch --no-requeue; the cluster has JobRequeue=1)
    wait_for(lambda: not queued_jobs(), timeout=60)
