"""SLURM allocations of a 6-point experiment on the local SLURM cluster, counted by sacct.

Runs the same 6-point Redis experiment twice through the slurm executor plugin: as shipped (all points
of a deployment in one group job) and with one job per point (--group-components ...=1, what a
plain per-rule submission does); then a service sweep of k = 2 deployments (io_threads 1, 2) x 3 points,
which must cost k service jobs and k client allocations (issue 16). Prints the jobs sacct saw for each
run: services, monitoring, clients. Needs the local cluster: `bash envs/local-slurm.sh start`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import ROOT, tmpdir

sys.path.insert(0, str(ROOT))
from aibench.rundir import RunDir
from tests.slurm.conftest import sacct_jobs

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run(grouped: bool, service_sweep: bool = False) -> None:
    work = tmpdir()
    subprocess.run(["cp", "-r", str(ROOT / "recipes"), str(work / "recipes")], check=True)
    experiment = {
        "service": "redis",
        "client": "redis-benchmark",
        "client_params": {"tests": "get", "requests": 50000},
        "sweep": {"clients": [1, 2, 4, 8, 16, 32]},
    }
    if service_sweep:
        experiment |= {"sweep": {"clients": [1, 4, 16]}, "service_sweep": {"io_threads": [1, 2]}}
    (work / "recipes/experiments/alloc.yaml").write_text(yaml.safe_dump(experiment))
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({"experiments": ["alloc"], "results": str(work / "results"),
                                      "recipes": str(work / "recipes")}))  # fmt: skip
    extra = [] if grouped else ["--group-components", "points-{deployment}=1"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    start = time.monotonic()
    argv = [SNAKEMAKE, "--profile", "profiles/slurm-test", "--configfile", str(config), "--quiet", *extra]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    wall = time.monotonic() - start
    run = RunDir(work / "results")
    # every service job's, the run's Prometheus (and Grafana) first
    dirs = run.service_dirs()
    services = [json.loads(d.stopped.read_text())["handle"]["job_id"] for d in dirs]
    monitors = sum(run.where(d)[0] in ("monitoring", "grafana") for d in dirs)
    deadline = time.monotonic() + 30  # accounting may lag the queue a little: poll until every job has ended
    while True:
        jobs = sacct_jobs(since)
        if (
            all(j["state"] not in ("PENDING", "RUNNING", "COMPLETING") for j in jobs)
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.5)
    clients = [j for j in jobs if j["id"] not in services]
    label = "grouped (as shipped)" if grouped else "one job per point"
    label = "service sweep, k = 2" if service_sweep else label
    points = len(run.measured_points())
    print(f"{label:<20}: {len(jobs)} SLURM jobs = {len(services) - monitors} service + {monitors} "
          f"monitoring + {len(clients)} client allocation(s) for {points} points; "
          f"wall {wall:.1f} s")  # fmt: skip


if __name__ == "__main__":
    run(grouped=True)
    run(grouped=False)
    run(grouped=True, service_sweep=True)
