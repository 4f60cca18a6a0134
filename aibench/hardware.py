"""What a node is: CPU model and count, memory, GPUs, kernel; recorded by each service job on its
node (ServiceDir.node_info) and by each client on its own (a point's provenance), so a run's report
and manifest say what the numbers were measured on.

The CPU from /proc/cpuinfo ("model name"; "CPU part" on Arm where there is none), the CPUs this
process may use (its affinity, as SLURM's cgroup allows) beside the node's, MemTotal from
/proc/meminfo, the GPUs from ``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits``
where nvidia-smi is on PATH (the GPU exporter's query form, aibench.monitoring.gpu_exporter).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

NVIDIA_SMI_TIMEOUT_S = 10.0


def _first(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def gpus() -> list[dict[str, Any]] | str:
    """The node's GPUs (name, memory MiB), or why they are unknown."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    argv = [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi: {exc}"
    if done.returncode != 0:
        return f"nvidia-smi exited {done.returncode}: {done.stderr.strip()[:200]}"
    out = []
    for line in done.stdout.splitlines():
        name, _, memory = line.rpartition(",")
        if name:
            mib = float(memory) if memory.strip().isdigit() else None
            out.append({"name": name.strip(), "memory_mib": mib})
    return out


def node_hardware() -> dict[str, Any]:
    memory = _first("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name") or _first("/proc/cpuinfo", "CPU part")
        or platform.processor() or None,
        "cpus_node": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_bytes": int(memory.split()[0]) * 1024 if memory else None,
        "gpus": gpus(),
        "kernel": platform.release(),
    }  # fmt: skip
