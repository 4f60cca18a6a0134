"""Readiness lag: how long after a service first answers does wait_endpoint notice it?

For each deployment a side thread PINGs the server every millisecond from the moment its endpoint
is known and records when it first answers; wait_ready (poll interval 50 ms, as in the Redis recipe)
records when it declared the service ready. Target: lag <= one poll interval. Local launcher and,
when the local SLURM cluster is up, the slurm launcher.
"""

from __future__ import annotations

import subprocess
import threading
import time

from common import REDIS_PARAMS, ROOT, tmpdir

from aibench import lifecycle
from aibench.contracts import DeploymentSpec, Placement
from aibench.probes import NotReady, redis_ping
from aibench.rundir import RunDir, ServiceDir

INTERVAL = 0.05
REPEATS = 5


def first_answer(service_dir: ServiceDir, out: dict) -> None:
    while not service_dir.endpoint.exists():
        time.sleep(0.0005)
    e, secrets = lifecycle.deployment(service_dir)
    password = secrets["REDIS_PASSWORD"]
    while True:
        try:
            redis_ping(e.host, e.port, password, timeout=0.05)
            out["at"] = time.time()
            return
        except NotReady:
            time.sleep(0.001)


def measure(launcher: str) -> list[float]:
    lags = []
    for _ in range(REPEATS):
        service_dir = RunDir(tmpdir()).service("lag")
        options = {"resources": {"partition": "debug", "cpus": 1, "mem_mb": 500, "time_min": 5}}
        placement = Placement(launcher, options if launcher == "slurm" else {})
        lifecycle.deploy(service_dir, DeploymentSpec("lag", "redis", REDIS_PARAMS, placement=placement))
        seen: dict = {}
        thread = threading.Thread(target=first_answer, args=(service_dir, seen), daemon=True)
        thread.start()
        try:
            ready = lifecycle.wait_ready(service_dir, 60, INTERVAL)
        finally:
            lifecycle.stop(service_dir)
        thread.join(5)
        lags.append(ready["ready_at"] - seen["at"])
    return lags


def main() -> None:
    launchers = ["local"]
    status = subprocess.run(["bash", "envs/local-slurm.sh", "status"], capture_output=True, cwd=ROOT)
    if status.returncode == 0:
        launchers.append("slurm")
    for launcher in launchers:
        lags = measure(launcher)
        shown = ", ".join(f"{lag * 1000:.0f}" for lag in lags)
        print(f"{launcher}: readiness noticed {shown} ms after the server first answered; ", end="")
        print(f"max {max(lags) * 1000:.0f} ms (poll interval {INTERVAL * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
