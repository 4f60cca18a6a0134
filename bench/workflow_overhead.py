"""Overhead: wall time of a whole workflow run (4-point sweep of ~5 s loads) / sum of load durations.

Calibrates the request count so one load lasts about 5 s on this machine, runs
`snakemake --profile profiles/local` on a private results directory, and prints the ratio
(target <= 1.5; issue 16: <= 1.25). Everything is included: Snakemake start-up, Prometheus and
Redis deployment, readiness, scrapes, stop, aggregation and the figures.

It also prints the deployment's fixed cost, which every deployment of a service sweep pays again
(issue 16), from the records the run leaves: deploy (spec.json written) -> ready (the ready record
kept in stopped.json) -> first point's window start, and last point's window end -> stopped.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import ROOT, by_hand, redis_deployment, tmpdir

from aibench.rundir import RunDir

LOAD_S = 5.0
RUNS = 3


def calibrate() -> int:
    params = {"tests": "get", "clients": 50, "pipeline": 1, "data_size": 3, "requests": 200000,
              "keyspace": 100000, "threads": 0}  # fmt: skip
    with redis_deployment(tmpdir(), monitored=False) as (service_dir, ready):
        ops = by_hand(ready, service_dir, params)
    return int(ops * LOAD_S)


def phases(results: Path, windows: list[dict[str, float]]) -> dict[str, float]:
    """Seconds of the deployment's fixed cost, from its records (see the module docstring)."""
    service = RunDir(results).service("overhead")
    stopped = json.loads(service.stopped.read_text())  # ready.json itself is forgotten after the stop
    ready_at, stopped_at = stopped["ready"]["ready_at"], stopped["stopped_at"]
    return {
        "deploy -> ready": ready_at - service.spec.stat().st_mtime,
        "ready -> first point": min(window["start"] for window in windows) - ready_at,
        "last point -> stopped": stopped_at - max(window["end"] for window in windows),
    }


def run_once(requests: int) -> tuple[float, list[float], dict[str, float]]:
    work = tmpdir()
    recipes = work / "recipes"
    subprocess.run(["cp", "-r", str(ROOT / "recipes"), str(recipes)], check=True)
    experiment = {
        "service": "redis",
        "client": "redis-benchmark",
        "client_params": {"tests": "get", "clients": 50, "requests": requests},
        "sweep": {"data_size": [3, 8, 16, 32]},
    }
    (recipes / "experiments" / "overhead.yaml").write_text(yaml.safe_dump(experiment))
    config = work / "config.yaml"
    results = work / "results"
    config.write_text(
        yaml.safe_dump({"experiments": ["overhead"], "results": str(results), "recipes": str(recipes)})
    )
    snakemake = Path(sys.executable).parent / "snakemake"
    start = time.monotonic()
    argv = [str(snakemake), "--profile", "profiles/local", "--configfile", str(config), "--quiet"]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    wall = time.monotonic() - start
    windows = [json.loads(p.summary.read_text())["window"] for p in RunDir(results).measured_points()]
    return wall, [window["duration_s"] for window in windows], phases(results, windows)


def main() -> None:
    ratios = []
    costs: dict[str, list[float]] = {}
    for run in range(RUNS):
        requests = calibrate()  # per run: the machine is shared and its speed drifts
        wall, loads, cost = run_once(requests)
        ratios.append(wall / sum(loads))
        shown = ", ".join(f"{d:.2f}" for d in loads)
        print(f"run {run + 1}: wall {wall:.1f} s / loads {sum(loads):.1f} s ({shown}) = {ratios[-1]:.2f}")
        print("  deployment: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cost.items()))
        for name, seconds in cost.items():
            costs.setdefault(name, []).append(seconds)
    print(f"overhead: median wall / sum of loads = {statistics.median(ratios):.2f} over {RUNS} runs "
          f"({requests:,} GET per point) (target <= 1.5; issue 16: <= 1.25)")  # fmt: skip
    print(
        "deployment fixed cost (median): "
        + ", ".join(f"{name} {statistics.median(v):.2f} s" for name, v in costs.items())
    )


if __name__ == "__main__":
    main()
