"""The service job: what a launcher runs (as a local process group, or as a SLURM job's step).

It runs in named stages (:func:`run`): its Prometheus file_sd targets registered, prepare steps, the
service, its token gateway, its exporters (the targets of those that could not start withdrawn), set-up
steps, then it publishes its endpoint (endpoint.json) and waits. On SIGTERM/SIGINT, or when the
service exits, it tears everything down: its targets removed, every process it started stopped.
Usage: ``python -m aibench.serve SPEC_JSON``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibench import heartbeat
from aibench.containers import apptainer_command
from aibench.contracts import Endpoint, ExporterRecord, JobSpec
from aibench.files import write_json
from aibench.hardware import node_hardware
from aibench.monitoring import sidecars
from aibench.monitoring.file_sd import remove_targets, write_target
from aibench.ports import free_port
from aibench.probes import NotReady, poll, tcp
from aibench.rundir import ServiceDir
from aibench.secrets import read_secrets
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind
from aibench.token_gateway import TOKEN_ENV

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: how long a set-up step waits for the service to accept connections (a model pull may follow)
SETUP_WAIT_S = 3600.0
#: exit codes of the service job besides the service's own
MISSING_BINARY, STEP_FAILED = 127, 1


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def log(message: str) -> None:
    print(f"[aibench serve {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _start(command: Command, stdout: Any = None) -> subprocess.Popen:
    return subprocess.Popen(
        command.argv,
        env={**os.environ, **command.env},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
    )


def _terminate(procs: list[subprocess.Popen], grace_s: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {grace_s:g} s: SIGKILL")
            proc.kill()
            proc.wait()


def bind_address(setting: str) -> str:
    """The address to bind: as given, or for ``auto`` the node's own address (reachable by other nodes)."""
    if setting != "auto":
        return setting
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return address


def gateway_command(ctx: ServiceContext, token: str) -> Command:
    """aibench.token_gateway in front of a gated kind; the token travels in the environment."""
    argv = [sys.executable, "-m", "aibench.token_gateway", "--listen", f"{ctx.host}:{ctx.port}"]
    return Command([*argv, "--upstream", f"127.0.0.1:{ctx.backend_port}"], env={TOKEN_ENV: token})


# --- the plan: addresses and ports ------------------------------------------------------------------


@dataclass(frozen=True)
class PortPlan:
    """Every port the service job binds, each picked free on the address it is bound to."""

    #: the service's own (its gateway's, for a gated kind)
    service: int
    #: a gated kind's server, behind its gateway on 127.0.0.1 (None: not gated)
    backend: int | None
    #: the kind's exporters, in the order ServiceKind.exporters uses them
    exporters: list[int]
    #: the node-level sidecars, in the order sidecars.wanted names them
    sidecars: list[int]


def plan_ports(
    kind: ServiceKind, host: str, watch_host: str, monitored: bool, sidecar_count: int
) -> PortPlan:
    """The ports of one service job: the kind says how many its exporters need (``exporter_ports``),
    the sidecars as many as start; an unmonitored service job starts no exporter at all."""

    def pick(count: int) -> list[int]:
        return [free_port(watch_host) for _ in range(count)] if monitored else []

    return PortPlan(
        service=free_port(host),
        backend=free_port("127.0.0.1") if kind.gateway_secret else None,
        exporters=pick(kind.exporter_ports),
        sidecars=pick(sidecar_count),
    )


@dataclass
class ServiceJob:
    """One service job's plan and what it has started so far (torn down in :func:`tear_down`)."""

    spec: JobSpec
    kind: ServiceKind
    ctx: ServiceContext
    #: the context the exporters bind in: a loopback-only service's exporters still bind the node's
    #: address, for the run's Prometheus scrapes them from its own node (they expose figures only)
    watch: ServiceContext
    exporters: list[Exporter]
    containerize: Callable[[Command, str], Command]
    procs: list[subprocess.Popen] = field(default_factory=list)
    service: subprocess.Popen | None = None
    target_names: list[str] = field(default_factory=list)

    @property
    def dirs(self) -> ServiceDir:
        return self.spec.service_dir

    def service_exited(self) -> str | None:
        """For poll(): why waiting is pointless (the service exited), or None."""
        assert self.service is not None
        return None if self.service.poll() is None else "the service exited"


def missing_binaries(spec: JobSpec, kind: ServiceKind) -> list[str]:
    """What the service job needs on PATH and lacks: apptainer under Apptainer, else the kind's binaries."""
    needed = [spec.runtime.binary] if spec.runtime.containerized else list(kind.binaries)
    return [b for b in needed if shutil.which(b) is None]


def _containerizer(
    spec: JobSpec, kind: ServiceKind, ctx: ServiceContext
) -> Callable[[Command, str], Command]:
    """Wraps a command of a stage (service, prepare-0, ...) in `apptainer exec` of the kind's image when
    the run says so, with the service directory and every other path the kind is told to use bound in."""
    if not spec.runtime.containerized:
        return lambda command, stage: command
    for cache in kind.cache_dirs(ctx):
        cache.mkdir(parents=True, exist_ok=True)  # a model cache on first use
    binds = [ctx.workdir, *kind.cache_dirs(ctx), *kind.container_binds(ctx)]
    image, settings = spec.image_of(kind.image), spec.runtime.apptainer

    def wrap(command: Command, stage: str) -> Command:
        env_file = spec.service_dir.env_file(stage)
        return apptainer_command(command, image, settings, binds, env_file, spec.gpus, log=log)

    return wrap


def plan(spec: JobSpec, kind: ServiceKind) -> ServiceJob:
    """The job's context: its address (loopback for a loopback-only kind), its ports, its exporters."""
    spec.datadir.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1" if kind.loopback_only else bind_address(spec.bind_host)
    watch_host = bind_address(spec.bind_host)
    monitored = spec.targets_dir is not None
    containerized_run = spec.runtime.containerized
    ports = plan_ports(kind, host, watch_host, monitored, len(sidecars.wanted(containerized_run, spec.gpus)))
    ctx = ServiceContext(
        experiment=spec.experiment,
        params=dict(spec.params),
        secrets=read_secrets(spec.secrets_file),
        host=host,
        port=ports.service,
        workdir=spec.workdir,
        datadir=spec.datadir,
        backend_port=ports.backend,
        containerized=containerized_run,
        image=spec.image_of(kind.image) if containerized_run else None,
    )
    watch = dataclasses.replace(ctx, host=watch_host)
    exporters = []
    if monitored:
        exporters = kind.exporters(watch, ports.exporters) + sidecars.node_level(
            watch, spec.gpus, ports.sidecars
        )
    return ServiceJob(spec, kind, ctx, watch, exporters, _containerizer(spec, kind, ctx))


# --- the stages -------------------------------------------------------------------------------------


def run_prepare_steps(job: ServiceJob) -> bool:
    """The kind's steps before the service starts (e.g. initialising a data directory); False when
    one fails (its output is logged)."""
    for number, prepare in enumerate(job.kind.prepare_commands(job.ctx)):
        log(f"prepare step: {' '.join(prepare.argv)}")
        done = subprocess.run(
            job.containerize(prepare, f"prepare-{number}").argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log(f"prepare step failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
            return False
    return True


def start_service(job: ServiceJob) -> None:
    job.service = _start(job.containerize(job.kind.command(job.ctx), "service"))
    job.procs.append(job.service)


def start_gateway(job: ServiceJob) -> None:
    """A gated kind's token gateway on the service's address, in front of its server on the loopback."""
    assert job.service is not None
    ctx, name = job.ctx, job.spec.kind
    if job.kind.gateway_secret is None:
        log(f"{name} started, pid {job.service.pid}, listening on {ctx.host}:{ctx.port}")
        return
    job.procs.append(_start(gateway_command(ctx, ctx.secrets[job.kind.gateway_secret])))
    log(f"{name} started, pid {job.service.pid}, on 127.0.0.1:{ctx.backend_port} behind the "
        f"token gateway on {ctx.host}:{ctx.port}")  # fmt: skip


def _exporter_problem(exporter: Exporter, started: list[Exporter]) -> str | None:
    if exporter.needs and exporter.needs not in {e.name for e in started}:
        return f"{exporter.needs} did not start"
    return None


def start_exporters(job: ServiceJob) -> None:
    """Every exporter that can start; only those get targets (nobody waits for one that never ran)."""
    started: list[Exporter] = []
    for exporter in job.exporters:
        if exporter.command is None:  # the service's own /metrics
            started.append(exporter)
            continue
        problem = _exporter_problem(exporter, started)
        if problem is None:
            try:
                command = sidecars.exporter_command(exporter, job.spec.runtime, job.dirs)
            except (subprocess.CalledProcessError, OSError) as exc:  # its image could not be pulled
                problem = f"no image ({exc})"
            else:
                if shutil.which(command.argv[0]) is None:
                    problem = f"{command.argv[0]} not found"
        if problem is not None:
            log(f"exporter {exporter.name}: {problem}; not monitored")
            continue
        with open(job.dirs.exporter_log(exporter.name), "ab") as out:
            job.procs.append(_start(command, stdout=out))
        started.append(exporter)
    job.exporters = started


def run_setup_steps(job: ServiceJob) -> None:
    """The kind's steps once the service listens, before it counts as started (e.g. a model pull)."""
    ctx = job.ctx
    for number, setup in enumerate(job.kind.setup_commands(ctx)):
        poll(lambda: tcp(ctx.host, ctx.port), SETUP_WAIT_S, 0.2, alive=job.service_exited)
        log(f"set-up step: {' '.join(setup.argv)}")
        subprocess.run(job.containerize(setup, f"setup-{number}").argv, check=True, stdin=subprocess.DEVNULL)


def target_name(job: ServiceJob, exporter: Exporter) -> str:
    """The file_sd file of an exporter: per deployment (two deployments of one experiment's service
    sweep may run at once, parallel_deployments), per exporter."""
    return f"{job.spec.experiment}--{job.spec.deployment}--{exporter.name}"


def register_targets(job: ServiceJob) -> None:
    """One file_sd target per scraped exporter, labelled with the node and job it runs in; written
    before anything starts, as the ports are planned. Prometheus passes new targets on to its scrapers
    at most every 5 s (discovery/manager.go: ``updatert: 5 * time.Second``), so registering them while
    the service starts, not after, keeps that tick out of the wait for the first point. Until an
    exporter listens its scrapes fail (``up`` 0), and the first point waits for ``up``."""
    if job.spec.targets_dir is None:
        return
    node = socket.gethostname()
    labels = {**job.spec.labels, "node": node, "job_id": os.environ.get("SLURM_JOB_ID", "local")}
    for exporter in (e for e in job.exporters if e.scraped):
        name = target_name(job, exporter)
        write_target(
            job.spec.targets_dir,
            name,
            f"{job.watch.host}:{exporter.port}",
            {**labels, "exporter": exporter.name},
        )
        job.target_names.append(name)


def withdraw_unstarted_targets(job: ServiceJob) -> None:
    """The targets of exporters that did not start (nobody waits for one that never ran)."""
    if job.spec.targets_dir is None:
        return
    started = {target_name(job, e) for e in job.exporters}
    gone = [name for name in job.target_names if name not in started]
    remove_targets(job.spec.targets_dir, gone)
    job.target_names = [name for name in job.target_names if name in started]


def publish_endpoint(job: ServiceJob) -> Endpoint:
    """endpoint.json: from now on the service counts as started."""
    assert job.service is not None
    node = socket.gethostname()
    endpoint = Endpoint(
        kind=job.spec.kind,
        host=job.ctx.host,
        port=job.ctx.port,
        node=node,
        pid=job.service.pid,
        started_at=time.time(),
        deployment=job.spec.deployment,
        exporters=tuple(ExporterRecord(e.name, e.port, e.scraped) for e in job.exporters),
        extra=job.kind.endpoint_extra(job.ctx),
    )
    endpoint.write(job.dirs.endpoint)
    return endpoint


def ready_on_node(job: ServiceJob, endpoint: Endpoint) -> bool:
    """A loopback-only service is probed here, on its own node (nothing else can reach it), and its
    readiness recorded in node_ready.json for wait_endpoint on the login node."""
    ctx, readiness, name = job.ctx, job.spec.readiness, job.spec.kind
    try:
        poll(
            lambda: job.kind.probe(endpoint.for_clients(), ctx.secrets, timeout=readiness.probe_timeout_s),
            readiness.timeout_s, readiness.interval_s, alive=job.service_exited,
        )  # fmt: skip
    except NotReady as exc:
        log(f"{name} not ready on its node: {exc}")
        return False
    write_json(job.dirs.node_ready, {"ready_at": time.time(), "node": socket.gethostname()})
    log(f"{name} ready on its node (probed on {ctx.host}:{ctx.port})")
    return True


def wait_beating(job: ServiceJob) -> int:
    """Wait for the service to exit, writing its heartbeat every ``heartbeat.INTERVAL_S``; its exit
    code (never 0: a service that exits by itself has failed its deployment)."""
    assert job.service is not None
    while True:
        heartbeat.beat(job.dirs.heartbeat, job.service.pid)
        try:
            code = job.service.wait(timeout=heartbeat.INTERVAL_S)
            break
        except subprocess.TimeoutExpired:
            continue
    log(f"{job.spec.kind} exited by itself with code {code}")
    return code or 1


def tear_down(job: ServiceJob) -> None:
    """Targets removed, every process stopped (SIGTERM, SIGKILL after the grace period), heartbeat ended."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if job.spec.targets_dir is not None:
        remove_targets(job.spec.targets_dir, job.target_names)
    _terminate(job.procs, job.spec.grace_s)
    heartbeat.stop(job.dirs.heartbeat)
    log("all processes of this service job stopped")


def serve(job: ServiceJob) -> int:
    """The stages from the first prepare step to the service's end; the exit code."""
    register_targets(job)
    write_json(job.dirs.node_info, {"node": socket.gethostname(), **node_hardware()})
    if not run_prepare_steps(job):
        return STEP_FAILED
    start_service(job)
    start_gateway(job)
    start_exporters(job)
    withdraw_unstarted_targets(job)
    run_setup_steps(job)
    endpoint = publish_endpoint(job)
    if job.kind.loopback_only and not ready_on_node(job, endpoint):
        return STEP_FAILED
    return wait_beating(job)


def run(spec_path: str) -> int:
    spec = JobSpec.read(spec_path)
    # tools installed with aibench (e.g. `chroma` from the chromadb package) sit beside its interpreter
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    kind = SERVICES.create(spec.kind)
    missing = missing_binaries(spec, kind)
    if missing:
        log(f"cannot start {spec.kind}: not found on PATH: {', '.join(missing)}")
        return MISSING_BINARY
    job = plan(spec, kind)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    try:
        return serve(job)
    except _Stop as stop:
        log(f"{stop} received: stopping {spec.kind}")
        return 0
    finally:
        tear_down(job)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
