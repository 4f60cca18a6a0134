"""Service lifecycle: deploy -> wait until ready -> stop, and stop-everything for error handlers.

State lives in the service directory (aibench.rundir.ServiceDir: results/<experiment>/service or
results/monitoring): spec.json (what to run: contracts.JobSpec), secrets.env (0600), handle.json
(contracts.Handle: launcher, pid or job id, log), endpoint.json (contracts.Endpoint: host, port; written
by the service job), ready.json, stopped.json, and the service's own on-disk state in data/. Every
deployment starts from an empty data/: an earlier deployment's is moved aside into replaced/ (kept for
inspection until the run ends successfully, then removed).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aibench import heartbeat, probes
from aibench.contracts import DeploymentSpec, Endpoint, Handle, JobSpec, Readiness
from aibench.errors import ServiceError
from aibench.files import read_json, tail, write_json
from aibench.launchers import JobState, get_launcher
from aibench.rundir import ServiceDir
from aibench.secrets import read_secrets, write_secrets
from aibench.services import SERVICES

#: a service directory, as a path or as its rundir view
Where = ServiceDir | str | os.PathLike[str]


def deploy(service_dir: Where, spec: DeploymentSpec) -> Handle:
    """Write secrets and spec.json, start the service job, write and return handle.json.

    ``spec.placement`` says which launcher (and its options: SLURM resources, modules) and runtime;
    under Apptainer the service runs inside ``spec.image`` (default: the kind's)."""
    where = ServiceDir.of(service_dir).absolute()
    where.path.mkdir(parents=True, exist_ok=True)
    where.retire_state()
    where.clear_per_deployment()
    service = SERVICES.create(spec.kind)
    write_secrets(where.secrets, service.make_secrets(dict(spec.params)))
    # `deployment` tells this deployment's series from an earlier one's of the same experiment
    job_spec = JobSpec.for_deployment(spec, where, deployment=uuid.uuid4().hex[:12])
    job_spec.write(where.spec)
    job = get_launcher(spec.placement.launcher).start(
        [sys.executable, "-m", "aibench.serve", str(where.spec)],
        where,
        job_name=f"aibench-{spec.experiment}-{spec.kind}",
        options=spec.placement.launcher_options,
    )
    handle = Handle(job, spec.kind, spec.experiment, spec.grace_s)
    handle.write(where.handle)
    return handle


def service_secrets(service_dir: Where) -> dict[str, str]:
    """The deployment's credentials (empty for services without any)."""
    secrets_file = ServiceDir.of(service_dir).secrets
    return read_secrets(secrets_file) if secrets_file.exists() else {}


def deployment(service_dir: Where) -> tuple[Endpoint, dict[str, str]]:
    """What a client needs to reach a running deployment: its endpoint.json and its secrets."""
    return Endpoint.read(ServiceDir.of(service_dir).endpoint), service_secrets(service_dir)


def _failure(handle: Handle, what: str) -> ServiceError:
    log = Path(handle.job.log)
    return ServiceError(
        f"service {handle.kind} of experiment {handle.experiment}: {what}\n"
        f"--- last lines of {log} ---\n{tail(log)}"
    )


def wait_ready(
    service_dir: Where, timeout_s: float, interval_s: float, queue_timeout_s: float = 86400
) -> dict[str, Any]:
    """Poll for endpoint.json, then the kind's readiness probe, within ``timeout_s``.

    A job still waiting in a queue (SLURM) has ``queue_timeout_s`` to start; ``timeout_s`` counts
    from its start. On failure the service is stopped and a ServiceError carries its log tail.
    """
    where = ServiceDir.of(service_dir)
    handle = Handle.read(where.handle)
    launcher = get_launcher(handle.launcher)
    service = SERVICES.create(handle.kind)
    secrets = service_secrets(where)
    start = time.monotonic()
    probe_timeout = Readiness(timeout_s, interval_s).probe_timeout_s

    def alive() -> str | None:
        status = launcher.state(handle.job)
        if status.job_over:
            return f"the service job ended before it was ready ({status})"
        return None

    def check() -> None:
        if not where.endpoint.exists():
            raise probes.NotReady(f"{where.endpoint} not written yet")
        if service.loopback_only:  # reachable on its own node only: the service job probes it there
            if not where.node_ready.is_file():
                raise probes.NotReady(f"{where.node_ready} not written yet (probed on its node)")
            return
        endpoint = Endpoint.read(where.endpoint)
        left = timeout_s - (time.monotonic() - start)
        service.probe(endpoint.for_clients(), secrets, timeout=max(0.1, min(probe_timeout, left)))

    def started() -> None:
        status = launcher.state(handle.job)
        if status.pending:
            raise probes.NotReady(f"the service job is still queued ({status})")

    try:
        probes.poll(started, queue_timeout_s, min(interval_s * 4, 1.0), alive=alive, max_interval_s=5.0)
        start = time.monotonic()
        probes.poll(check, timeout_s, interval_s, alive=alive, max_interval_s=max(interval_s, 1.0))
    except probes.NotReady as exc:
        how = stop(where)
        raise _failure(handle, f"{exc} (service stopped: {how['how']})") from None
    endpoint = Endpoint.read(where.endpoint)
    ready = {
        "ready_at": time.time(),
        "waited_s": round(time.monotonic() - start, 3),
        "lag_after_start_s": round(time.time() - endpoint.started_at, 3),
        "host": endpoint.host,
        "port": endpoint.port,
        "node": endpoint.node,
    }
    write_json(where.ready, ready)
    return ready


def stop(service_dir: Where, grace_s: float | None = None) -> dict[str, Any]:
    """Stop the service job of ``service_dir``; write and return stopped.json."""
    where = ServiceDir.of(service_dir)
    if not where.handle.is_file():  # stopped and forgotten already
        if where.stopped.is_file():
            return {**read_json(where.stopped), "how": "already ended"}
        raise ServiceError(f"{where.path}: no deployment here (no {where.HANDLE}, no {where.STOPPED})")
    handle = Handle.read(where.handle)
    how = get_launcher(handle.launcher).stop(handle.job, handle.grace_s if grace_s is None else grace_s)
    _withdraw_targets(where)
    stopped = {"stopped_at": time.time(), "how": how, "handle": handle.to_json()}
    if where.ready.is_file():  # the deployment's whole lifecycle stays on record once ready.json is forgotten
        stopped["ready"] = read_json(where.ready)
    write_json(where.stopped, stopped)
    return stopped


def _withdraw_targets(where: ServiceDir) -> None:
    """Remove the deployment's Prometheus targets (the service job removes them as it ends, but not
    when it was killed or its node failed: Prometheus would scrape a dead address for the rest of the
    run). Their files are named by experiment and deployment (aibench.serve.target_name)."""
    if not where.spec.is_file():
        return
    spec = JobSpec.read(where.spec)
    if spec.targets_dir is not None:
        for path in Path(spec.targets_dir).glob(f"{spec.experiment}--{spec.deployment}--*.json"):
            path.unlink(missing_ok=True)


def _stopped_this_job(where: ServiceDir, handle: Handle) -> bool:
    """stopped.json is about the job in handle.json (not an earlier deployment's)."""
    if not where.stopped.exists():
        return False
    return read_json(where.stopped).get("handle") == handle.to_json()


def running(service_dir: Where) -> bool:
    """True while the service job of ``service_dir`` has not been stopped and it, or any process it
    started (orphaned when the job itself was killed), is alive."""
    where = ServiceDir.of(service_dir)
    if not where.handle.exists():
        return False
    handle = Handle.read(where.handle)
    if _stopped_this_job(where, handle):
        return False
    return not get_launcher(handle.launcher).state(handle.job).ended


def forget(service_dir: Where) -> bool:
    """Remove the live-deployment files of an ended deployment (rundir.ServiceDir.forget). True when it
    had been ready (points may depend on it).

    A rerun then measures every point of that experiment again, on the new deployment (Snakemake
    reruns whatever consumed the old one): all points of an experiment come from one deployment. The
    points measured on the old one are kept in their attempts/ (ServiceDir.supersede_points)."""
    return ServiceDir.of(service_dir).forget()


def ensure_alive(service_dir: Where) -> None:
    """Raise ServiceError unless the deployment in ``service_dir`` is still running. A deployment that
    ended behind the workflow's back (killed, its job cancelled, a run killed outright) leaves a
    stale ready.json: its live files are removed, so running the workflow again deploys afresh."""
    where = ServiceDir.of(service_dir)
    if not where.handle.is_file():
        return  # not deployed by the workflow (e.g. `aibench run-client` against any endpoint)
    handle = Handle.read(where.handle)
    if handle.launcher == "slurm":
        # A client job runs in the rule image, maybe on another node: no SLURM client there (as on
        # MeluXina). Liveness comes from the heartbeat the service job keeps on the shared filesystem.
        why = heartbeat.problem(where.heartbeat)
        if why is None and not where.stopped.is_file():
            return
        # Not forgotten here: the handle is what lets the workflow's error handler (on the login node)
        # cancel the job, should it still be queued or running behind a stale heartbeat.
        raise ServiceError(
            f"the deployment in {where.path} is no longer running ({why or 'stopped'}): run the "
            "workflow again to deploy it afresh"
        )
    status = get_launcher(handle.launcher).state(handle.job)
    if status.job_over or where.stopped.is_file():
        if status.state is JobState.ORPHANED:
            stop(where)  # what is left of it (orphans) goes first: the handle is needed to find it
        forget(where)
        raise ServiceError(
            f"the deployment in {where.path} is no longer running ({status}); its endpoint is stale and "
            "has been forgotten: run the workflow again to deploy it afresh"
        )


def stop_all(service_dirs: Iterable[Where], forget_ended: bool = True) -> list[str]:
    """Stop every service job still alive among ``service_dirs``; returns what was stopped. With
    ``forget_ended``, every ended deployment's live files are removed (see ``forget``)."""
    stopped, superseded = [], set()
    for service_dir in map(ServiceDir.of, service_dirs):
        try:
            if running(service_dir):
                how = stop(service_dir)["how"]
                stopped.append(f"{service_dir.path} ({how})")
            # the replicas of a deployment share its points: they are kept once
            if forget_ended and forget(service_dir) and service_dir.path.parent not in superseded:
                superseded.add(service_dir.path.parent)
                kept = service_dir.supersede_points()
                if kept:
                    stopped.append(f"{service_dir.path}: its deployment is over; {len(kept)} measured points "
                                   "kept in their attempts/ and measured again by the next run")  # fmt: skip
        except Exception as exc:  # keep going: every other service must still be stopped
            stopped.append(f"{service_dir.path}: could not stop: {exc}")
    return stopped
