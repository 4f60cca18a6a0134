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
from collections.abc import Callable
from pathlib import Path

from aibench.containers import apptainer_command
from aibench.contracts import Runtime
from aibench.rundir import ServiceDir
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


def wanted(containerized: bool, gpus: int) -> list[Callable[[ServiceContext, int], Exporter]]:
    """The sidecars a service job starts, in order: the node exporter always, cAdvisor under Apptainer,
    the GPU exporter when the service has GPUs (each needs one port)."""
    return [node_exporter, *([cadvisor] if containerized else []), *([gpu_exporter] if gpus else [])]


def node_level(ctx: ServiceContext, gpus: int, ports: list[int]) -> list[Exporter]:
    """The sidecars of one service job, one on each of ``ports`` (as many as :func:`wanted` names)."""
    makers = wanted(ctx.containerized, gpus)
    if len(ports) != len(makers):
        raise ValueError(f"{len(makers)} sidecars need as many ports, got {len(ports)}")
    return [make(ctx, port) for make, port in zip(makers, ports, strict=True)]


def exporter_command(exporter: Exporter, runtime: Runtime, service_dir: ServiceDir) -> Command:
    """``exporter``'s command as the service job runs it: in its image under Apptainer, else as is."""
    if exporter.command is None:
        raise ValueError(f"exporter {exporter.name} is the service's own endpoint: there is nothing to run")
    argv0 = exporter.command.argv[0]
    if not runtime.containerized or argv0 not in IMAGES:
        return exporter.command
    image, inside = IMAGES[argv0]
    binds = [service_dir.path] + ([Path("/sys"), Path("/var/run")] if exporter.name == "cadvisor" else [])
    inner = Command([inside, *exporter.command.argv[1:]], exporter.command.env)
    return apptainer_command(inner, image, runtime.apptainer, binds, service_dir.exporter_env(exporter.name))
