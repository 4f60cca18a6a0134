"""The service job: what a launcher runs (as a local process group, or as a SLURM job's step).

It picks free ports on its node, starts the service and its exporters, writes endpoint.json and
the Prometheus file_sd targets, then waits. On SIGTERM/SIGINT it stops everything it started
and removes its targets. Usage: ``python -m aibench.serve SPEC_JSON``.
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
from pathlib import Path
from typing import Any

from aibench import heartbeat
from aibench.containers import apptainer_command, resolve_image
from aibench.files import read_json, write_json
from aibench.lifecycle import NODE_READY_NAME
from aibench.monitoring import sidecars
from aibench.monitoring.file_sd import remove_targets, write_target
from aibench.ports import free_port
from aibench.probes import NotReady, poll, tcp
from aibench.secrets import read_secrets
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext
from aibench.token_gateway import TOKEN_ENV

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HEARTBEAT_NAME = heartbeat.FILE_NAME


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


def _wait_beating(service: subprocess.Popen, beat_file: Path) -> int:
    """Wait for the service to exit, writing its heartbeat every ``heartbeat.INTERVAL_S``."""
    while True:
        heartbeat.beat(beat_file, service.pid)
        try:
            return service.wait(timeout=heartbeat.INTERVAL_S)
        except subprocess.TimeoutExpired:
            continue


def _ready_on_node(
    kind: Any, ctx: ServiceContext, spec: dict[str, Any], service: subprocess.Popen, workdir: Path
) -> bool:
    """A loopback-only service is probed here, on its own node (nothing else can reach it), and its
    readiness recorded in node_ready.json for wait_endpoint on the login node."""
    readiness = spec.get("readiness", {})
    endpoint = {"host": ctx.host, "port": ctx.port, **kind.endpoint_extra(ctx)}
    timeout = float(readiness.get("timeout_s", 600))
    interval = float(readiness.get("interval_s", 0.5))
    try:
        poll(
            lambda: kind.probe(endpoint, ctx.secrets, timeout=max(0.5, min(5.0, interval * 10))),
            timeout, interval,
            alive=lambda: None if service.poll() is None else "the service exited",
        )  # fmt: skip
    except NotReady as exc:
        log(f"{spec['kind']} not ready on its node: {exc}")
        return False
    write_json(workdir / NODE_READY_NAME, {"ready_at": time.time(), "node": socket.gethostname()})
    log(f"{spec['kind']} ready on its node (probed on {ctx.host}:{ctx.port})")
    return True


def bind_address(setting: str) -> str:
    """The address to bind: as given, or for ``auto`` the node's own address (reachable by other nodes)."""
    if setting != "auto":
        return setting
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return address


def _containerizer(spec: dict[str, Any], kind: Any, ctx: ServiceContext) -> Callable[[Command, str], Command]:
    """Wraps commands in `apptainer exec` of the kind's image when the run says so, with the service
    directory and every other path the kind is told to use bound in."""
    if spec.get("runtime") != "apptainer":
        return lambda command, env_name: command
    settings = spec.get("apptainer", {})
    reference = spec.get("image") or kind.image
    image = resolve_image(reference, settings, log)
    for cache in kind.cache_dirs(ctx):
        cache.mkdir(parents=True, exist_ok=True)  # a model cache on first use
    binds = [ctx.workdir, *kind.cache_dirs(ctx), *kind.container_binds(ctx)]

    def wrap(command: Command, env_name: str) -> Command:
        return apptainer_command(
            command, image, settings, binds, ctx.workdir / env_name, spec.get("gpus", 0), reference
        )

    return wrap


def gateway_command(ctx: ServiceContext, token: str) -> Command:
    """aibench.token_gateway in front of a gated kind; the token travels in the environment."""
    argv = [sys.executable, "-m", "aibench.token_gateway", "--listen", f"{ctx.host}:{ctx.port}"]
    return Command([*argv, "--upstream", f"127.0.0.1:{ctx.backend_port}"], env={TOKEN_ENV: token})


def run(spec_path: str) -> int:
    spec = read_json(spec_path)
    # tools installed with aibench (e.g. `chroma` from the chromadb package) sit beside its interpreter
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    kind = SERVICES.create(spec["kind"])
    needed = (
        [spec.get("apptainer", {}).get("binary", "apptainer")] if spec.get("runtime") == "apptainer" else []
    )
    missing = [b for b in (needed or kind.binaries) if shutil.which(b) is None]
    if missing:
        log(f"cannot start {spec['kind']}: not found on PATH: {', '.join(missing)}")
        return 127
    workdir = Path(spec["workdir"])
    datadir = Path(spec["datadir"])
    datadir.mkdir(parents=True, exist_ok=True)
    secrets = read_secrets(spec["secrets_file"]) if spec.get("secrets_file") else {}
    host = "127.0.0.1" if kind.loopback_only else bind_address(spec["bind_host"])
    ctx = ServiceContext(
        experiment=spec["experiment"],
        params=spec["params"],
        secrets=secrets,
        host=host,
        port=free_port(host),
        workdir=workdir,
        datadir=datadir,
        backend_port=free_port("127.0.0.1") if kind.gateway_secret else None,
        containerized=spec.get("runtime") == "apptainer",
        image=(spec.get("image") or kind.image) if spec.get("runtime") == "apptainer" else None,
    )
    targets_dir = spec.get("targets_dir")
    exporters: list[Exporter] = []
    if targets_dir:
        ports = [free_port(host) for _ in range(7)]
        # a loopback-only service's exporters still bind the node's address: the run's Prometheus
        # scrapes them from its own node (they expose figures, never the service itself)
        watch = dataclasses.replace(ctx, host=bind_address(spec["bind_host"])) if kind.loopback_only else ctx
        exporters = kind.exporters(watch, ports[:4]) + sidecars.node_level(watch, spec, ports[4:])
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    procs: list[subprocess.Popen] = []
    target_names: list[str] = []
    code = 0
    try:
        containerize = _containerizer(spec, kind, ctx)
        for number, prepare in enumerate(kind.prepare_commands(ctx)):
            log(f"prepare step: {' '.join(prepare.argv)}")
            done = subprocess.run(
                containerize(prepare, f"prepare-{number}.env").argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                log(f"prepare step failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
                return 1
        service = _start(containerize(kind.command(ctx), "service.env"))
        procs.append(service)
        if kind.gateway_secret:
            procs.append(_start(gateway_command(ctx, secrets[kind.gateway_secret])))
            log(f"{spec['kind']} started, pid {service.pid}, on 127.0.0.1:{ctx.backend_port} behind the "
                f"token gateway on {host}:{ctx.port}")  # fmt: skip
        else:
            log(f"{spec['kind']} started, pid {service.pid}, listening on {host}:{ctx.port}")
        started = []
        for exporter in exporters:
            if exporter.needs and exporter.needs not in {e.name for e in started}:
                log(f"exporter {exporter.name}: {exporter.needs} did not start; not monitored")
                continue
            try:
                command = sidecars.containerized(exporter, spec, workdir)
            except (subprocess.CalledProcessError, OSError) as exc:  # its image could not be pulled
                log(f"exporter {exporter.name}: no image ({exc}); not monitored")
                continue
            if shutil.which(command.argv[0]) is None:
                log(f"exporter {exporter.name}: {command.argv[0]} not found; not monitored")
                continue
            with open(workdir / f"exporter-{exporter.name}.log", "ab") as out:
                procs.append(_start(command, stdout=out))
            started.append(exporter)
        exporters = started  # only these get targets: nobody waits for an exporter that never ran
        for number, setup in enumerate(kind.setup_commands(ctx)):
            poll(lambda: tcp(host, ctx.port), float(spec.get("setup_timeout_s", 3600)), 0.2,
                 alive=lambda: None if service.poll() is None else "the service exited")  # fmt: skip
            log(f"set-up step: {' '.join(setup.argv)}")
            subprocess.run(
                containerize(setup, f"setup-{number}.env").argv, check=True, stdin=subprocess.DEVNULL
            )
        node = socket.gethostname()
        if targets_dir:
            job_id = os.environ.get("SLURM_JOB_ID", "local")
            labels = {**spec.get("labels", {}), "node": node, "job_id": job_id}
            for exporter in (e for e in exporters if e.scraped):
                name = f"{spec['experiment']}--{exporter.name}"
                write_target(
                    targets_dir,
                    name,
                    f"{watch.host}:{exporter.port}",
                    {**labels, "exporter": exporter.name},
                )
                target_names.append(name)
        write_json(
            workdir / "endpoint.json",
            {
                "kind": spec["kind"],
                "host": host,
                "port": ctx.port,
                "node": node,
                "pid": service.pid,
                "started_at": time.time(),
                "deployment": spec.get("labels", {}).get("deployment"),
                "exporters": [{"name": e.name, "port": e.port, "scraped": e.scraped} for e in exporters],
                **kind.endpoint_extra(ctx),
            },
        )
        if kind.loopback_only and not _ready_on_node(kind, ctx, spec, service, workdir):
            return 1
        code = _wait_beating(service, workdir / HEARTBEAT_NAME)
        log(f"{spec['kind']} exited by itself with code {code}")
        code = code or 1
    except _Stop as stop:
        log(f"{stop} received: stopping {spec['kind']}")
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if targets_dir:
            remove_targets(targets_dir, target_names)
        _terminate(procs, float(spec.get("grace_s", 10)))
        heartbeat.stop(workdir / HEARTBEAT_NAME)
        log("all processes of this service job stopped")
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
