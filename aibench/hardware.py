"""What a node is: CPU model and count, memory, GPUs, kernel; recorded by each service job on its
node (ServiceDir.node_info) and by each client on its own (a point's provenance), so a run's report
and manifest say what the numbers were measured on.

The CPU from /proc/cpuinfo ("model name"; "CPU part" on Arm where there is none), the CPUs this
process may use (its affinity, as SLURM's cgroup allows) beside the node's, MemTotal from
/proc/meminfo, the GPUs from nvidia-smi where it is on PATH (the GPU exporter's own query,
aibench.monitoring.gpu_exporter.query).
"""

from __future__ import annotations

import math
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
    from aibench.monitoring.gpu_exporter import query

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        rows = query(smi, NVIDIA_SMI_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        return f"nvidia-smi exited {exc.returncode}: {(exc.stderr or '').strip()[:200]}"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"nvidia-smi: {exc}"
    memory = (float(row["memory.total"]) for row in rows)
    return [{"name": str(row["name"]), "memory_mib": None if math.isnan(mib) else mib}
            for row, mib in zip(rows, memory, strict=True)]  # fmt: skip


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
