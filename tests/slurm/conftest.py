"""The tests' real multi-node SLURM cluster (envs/local-slurm.sh): a login host (this network namespace:
slurmctld, slurmdbd + MariaDB), compute nodes in network namespaces of their own, accounting enforced."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "envs" / "local-slurm.sh"


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[None]:
    """Started (and installed if need be) by the test set-up; stopped again if it was not running."""
    was_running = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    done = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"local SLURM cluster did not start:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    # the test cluster's environment: every job names the account, as on MeluXina (AIBENCH_ACCOUNT)
    saved = dict(os.environ)
    os.environ.update(cluster_env())
    os.environ["AIBENCH_ACCOUNT"] = os.environ["AIBENCH_SLURM_ACCOUNT"]
    os.environ["AIBENCH_MODULES"] = ""  # the test cluster has no `module` command
    yield
    os.environ.clear()
    os.environ.update(saved)
    if not was_running:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=300)


def cluster_env() -> dict[str, str]:
    """What `envs/local-slurm.sh env` exports (partitions, account, node names, the login address)."""
    out = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = " ".join(shlex.split(value))
    return env


def compute_nodes() -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, check=True)
    return sorted(set(out.stdout.split()))


def node_address(node: str) -> str:
    """A compute node's address on the test network (from /etc/hosts, as the nodes resolve it)."""
    return socket.gethostbyname(node)


def on_node(node: str, *argv: str, **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A process in ``node``'s network namespace (as a shell there would run it; for probes only)."""
    return subprocess.Popen(["nsenter", f"--net=/var/run/netns/{node}", *argv], **kwargs)


def queued_jobs(name_fragment: str = "") -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if name_fragment in line]


def sacct_jobs(since: str) -> list[dict[str, str]]:
    """The jobs submitted at or after ``since`` (sacct -S alone also lists an earlier test's job still
    running, or still recorded as running: slurmdbd learns of a job's end a moment after squeue)."""
    fields = "JobID,JobName,State,Partition,NodeList,Submit"
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", since, "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = ["id", "name", "state", "partition", "nodes", "submit"]
    jobs = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines() if line]
    return [job for job in jobs if job["submit"] >= since]  # both ISO 8601, local time


@pytest.fixture(autouse=True)
def no_slurm_job_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test on the cluster leaves no job queued or running (cancelled ones get 60 s to end); what is
    left is cancelled, so one failure does not cascade into the next test's accounting."""
    yield
    if "local_slurm" not in request.fixturenames:
        return
    deadline = time.monotonic() + 60
    while (left := queued_jobs()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        subprocess.run(["scancel", *(line.split()[0] for line in left)], check=False)
        pytest.fail(f"SLURM jobs left queued or running after the test: {left}")


def stop_when_started(service_dir: Path, timeout: float = 120) -> threading.Thread:
    """Fault injection: SIGSTOP the service's server process the moment it exists (a hung server).

    It is found as the redis-server child of the service job for ``service_dir``, before the job
    has written endpoint.json, so the readiness probe never sees it answer.
    """
    spec = str(service_dir / "spec.json")

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in psutil.process_iter(["name"]):
                try:
                    if proc.info["name"] == "redis-server" and spec in " ".join(proc.parent().cmdline()):
                        proc.suspend()
                        return
                except (psutil.Error, AttributeError):
                    continue
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def apptainer_images() -> None:
    """The Apptainer STAND-IN on every node's PATH (envs/install-standins.sh), every stand-in image, and
    the rule image built from envs/aibench.def itself; all cached machine-wide (a second run builds
    nothing: envs/build-images.sh prints "cached" per image)."""
    steps = [
        ["bash", "envs/install-standins.sh"],
        ["bash", "envs/build-images.sh", "--all"],
        ["apptainer", "build", "--force", "envs/aibench.sif", "envs/aibench.def"],
    ]
    for argv in steps:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
