"""Node-level exporters every service job starts beside its service, and exporters under Apptainer.

- node exporter (always): the node's CPU, memory, network, load.
- cAdvisor (under Apptainer only, i.e. on MeluXina): cgroup figures. Apptainer's `exec` makes no
  cgroup of its own, so cAdvisor sees the node and the SLURM job/step cgroups (slurmstepd), not one
  container per service; per-service CPU and memory come from the process exporter.
- GPU exporter (when the service asks for GPUs): aibench.monitoring.gpu_exporter reading nvidia-smi,
  with DCGM metric names; it runs natively (it needs the host's driver), never in an image.

Under Apptainer every exporter except the GPU one runs from its own image (IMAGES, pinned to the
versions Debian 12 ships, which the local runs use), keyed by the binary the local command names.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aibench.containers import apptainer_command, resolve_image
from aibench.services.base import Command, Exporter, ServiceContext

#: local binary -> (image, the program's name there: aibench.images knows where the image keeps it)
IMAGES = {
    "prometheus-node-exporter": ("docker://quay.io/prometheus/node-exporter:v1.5.0", "node_exporter"),
    "prometheus-process-exporter": ("docker://ncabatoff/process-exporter:0.7.10", "process-exporter"),
    "prometheus-redis-exporter": ("docker://oliver006/redis_exporter:v1.45.0", "redis_exporter"),
    "prometheus-mysqld-exporter": ("docker://prom/mysqld-exporter:v0.14.0", "mysqld_exporter"),
    "cadvisor": ("docker://gcr.io/cadvisor/cadvisor:v0.49.1", "cadvisor"),
}
NODE_COLLECTORS = ("cpu", "meminfo", "netdev", "loadavg", "stat")


def node_exporter(ctx: ServiceContext, port: int) -> Exporter:
    argv = [
        "prometheus-node-exporter",
        f"--web.listen-address={ctx.host}:{port}",
        "--collector.disable-defaults",
    ]
    return Exporter("node", Command(argv + [f"--collector.{c}" for c in NODE_COLLECTORS]), port)


def cadvisor(ctx: ServiceContext, port: int) -> Exporter:
    argv = ["cadvisor", f"--listen_ip={ctx.host}", f"--port={port}", "--docker_only=false",
            "--housekeeping_interval=1s", "--store_container_labels=false",
            "--disable_metrics=disk,diskIO,tcp,udp,percpu,sched,process,hugetlb,referenced_memory,cpu_topology,resctrl",
            "--raw_cgroup_prefix_whitelist=/slurm,/system.slice/slurmstepd.scope"]  # fmt: skip
    return Exporter("cadvisor", Command(argv), port)


def gpu_exporter(ctx: ServiceContext, port: int) -> Exporter:
    argv = [sys.executable, "-m", "aibench.monitoring.gpu_exporter", "--listen", f"{ctx.host}:{port}"]
    return Exporter("gpu", Command(argv), port)


def node_level(ctx: ServiceContext, spec: dict[str, Any], ports: list[int]) -> list[Exporter]:
    """The sidecars of one service job, on ``ports`` (as many as it may need: 3)."""
    out = [node_exporter(ctx, ports[0])]
    if ctx.containerized:
        out.append(cadvisor(ctx, ports[1]))
    if spec.get("gpus", 0):
        out.append(gpu_exporter(ctx, ports[2]))
    return out


def containerized(exporter: Exporter, spec: dict[str, Any], workdir: Path) -> Command:
    """``exporter``'s command as the service job runs it: in its image under Apptainer, else as is."""
    argv0 = exporter.command.argv[0]
    if spec.get("runtime") != "apptainer" or argv0 not in IMAGES:
        return exporter.command
    image, inside = IMAGES[argv0]
    settings = spec.get("apptainer", {})
    binds = [workdir] + ([Path("/sys"), Path("/var/run")] if exporter.name == "cadvisor" else [])
    inner = Command([inside, *exporter.command.argv[1:]], exporter.command.env)
    return apptainer_command(
        inner,
        resolve_image(image, settings),
        settings,
        binds,
        workdir / f"exporter-{exporter.name}.env",
        reference=image,
    )
