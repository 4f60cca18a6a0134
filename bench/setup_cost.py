"""Set-up cost of the MeluXina-faithful test environment, printed as figures.

1. The test cluster (envs/local-slurm.sh): stop, then a start from stopped (daemons, nodes' network
   namespaces, accounting), then a start that finds everything running (what every test session does).
2. The stand-in images: every image (envs/build-images.sh --all) and the rule image (apptainer build
   envs/aibench.def) into an EMPTY temporary cache, then the same again (all cached).

Usage: .venv/bin/python bench/setup_cost.py  (root; stops and restarts the test cluster: run it when
no test runs). The empty-cache build downloads Debian and PyPI packages: minutes, network-bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def main() -> None:
    cluster = ["bash", "envs/local-slurm.sh"]
    timed([*cluster, "stop"])
    cold = timed([*cluster, "start"])
    warm = timed([*cluster, "start"])
    print(f"test cluster: start from stopped {cold:.1f} s; start when running {warm:.1f} s")

    timed(["bash", "envs/install-standins.sh"])
    with tempfile.TemporaryDirectory(prefix="aibench-image-cache-", dir="/var/tmp") as cache:
        env = {**os.environ, "AIBENCH_IMAGE_CACHE": cache}
        sif = Path(cache) / "aibench.sif"
        rule = ["apptainer", "build", "--force", str(sif), "envs/aibench.def"]
        images_cold = timed(["bash", "envs/build-images.sh", "--all"], env)
        rule_cold = timed(rule, env)
        images_warm = timed(["bash", "envs/build-images.sh", "--all"], env)
        rule_warm = timed(rule, env)
        size = subprocess.run(["du", "-sh", cache], capture_output=True, text=True).stdout.split()[0]
    print(f"stand-in images (all recipes): empty cache {images_cold:.0f} s, cached {images_warm:.1f} s")
    print(f"rule image (envs/aibench.def): empty cache {rule_cold:.0f} s, cached {rule_warm:.1f} s")
    print(f"cache size: {size}")


if __name__ == "__main__":
    main()
