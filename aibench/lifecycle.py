"""Service lifecycle: deploy -> wait until ready -> stop, and stop-everything for error handlers.

State lives in the service directory (results/<experiment>/service or results/monitoring):
spec.json (what to run), secrets.env (0600), handle.json (launcher, pid or job id, log),
endpoint.json (host, port; written by the service job), ready.json, stopped.json, and the service's
own on-disk state in data/. Every deployment starts from an empty data/: an earlier deployment's is
moved aside into replaced/ (kept for inspection until the run ends successfully, then removed).
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aibench import heartbeat, probes
from aibench.errors import ServiceError
from aibench.files import read_json, tail, write_json
from aibench.launchers import get_launcher
from aibench.secrets import read_secrets, write_secrets
from aibench.services import SERVICES

LOG_NAME = "service.log"
#: the service job's record that a loopback-only service answered its probe on its node (aibench.serve)
NODE_READY_NAME = "node_ready.json"


def deploy(
    service_dir: str | Path,
    *,
    experiment: str,
    kind: str,
    params: dict[str, Any],
    launcher: str = "local",
    targets_dir: str | Path | None = None,
    bind_host: str = "127.0.0.1",
    grace_s: float = 10.0,
    labels: dict[str, str] | None = None,
    launcher_options: dict[str, Any] | None = None,
    runtime: str = "native",
    image: str | None = None,
    apptainer: dict[str, Any] | None = None,
    gpus: int = 0,
    ready_timeout_s: float = 600.0,
    ready_interval_s: float = 0.5,
) -> dict[str, Any]:
    """Write secrets and spec, start the service job, write and return handle.json.

    ``launcher_options`` go to the launcher (SLURM resources, modules); ``runtime`` 'apptainer'
    runs the service inside ``image`` (default: the kind's) with the ``apptainer`` settings.
    """
    service_dir = Path(service_dir).absolute()
    service_dir.mkdir(parents=True, exist_ok=True)
    set_aside_state(service_dir)
    for stale in ("endpoint.json", "ready.json", "stopped.json", heartbeat.FILE_NAME, NODE_READY_NAME):
        (service_dir / stale).unlink(missing_ok=True)
    service = SERVICES.create(kind)
    deployment_id = uuid.uuid4().hex[:12]
    secrets = service.make_secrets(params)
    secrets_file = service_dir / "secrets.env"
    write_secrets(secrets_file, secrets)
    spec = {
        "kind": kind,
        "experiment": experiment,
        "params": params,
        "secrets_file": str(secrets_file),
        "workdir": str(service_dir),
        "datadir": str(service_dir / DATA_NAME),
        "bind_host": bind_host,
        "targets_dir": str(Path(targets_dir).absolute()) if targets_dir else None,
        "grace_s": grace_s,
        # `deployment` tells this deployment's series from an earlier one's of the same experiment
        "labels": {"experiment": experiment, "service": kind, "deployment": deployment_id, **(labels or {})},
        "runtime": runtime,
        "image": image,
        "apptainer": apptainer or {},
        "gpus": gpus,
        # a loopback-only kind is probed by the service job on its own node
        "readiness": {"timeout_s": ready_timeout_s, "interval_s": ready_interval_s},
    }
    spec_file = service_dir / "spec.json"
    write_json(spec_file, spec)
    handle = get_launcher(launcher).start(
        [sys.executable, "-m", "aibench.serve", str(spec_file)],
        log=service_dir / LOG_NAME,
        workdir=service_dir,
        job_name=f"aibench-{experiment}-{kind}",
        options=launcher_options,
    )
    handle.update({"kind": kind, "experiment": experiment, "grace_s": grace_s})
    write_json(service_dir / "handle.json", handle)
    return handle


#: where a service keeps its on-disk state (a database, Prometheus' TSDB), and where an earlier
#: deployment's goes when the service is deployed again
DATA_NAME, REPLACED_NAME = "data", "replaced"


def set_aside_state(service_dir: Path) -> Path | None:
    """Move an earlier deployment's data/ into replaced/<time>/ (a rename: instant, same filesystem),
    so the new deployment starts from fresh state - MariaDB initialises a new data directory with the
    new passwords, Redis loads no earlier dump, Chroma no earlier collection. Returns where it went."""
    data = service_dir / DATA_NAME
    if not data.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = service_dir / REPLACED_NAME / f"{stamp}-{uuid.uuid4().hex[:6]}"
    target.mkdir(parents=True)
    data.rename(target / DATA_NAME)
    return target


def discard_replaced_state(service_dirs: list[Path]) -> list[Path]:
    """Remove the earlier deployments' state set aside in ``service_dirs`` (at the end of a successful
    run: every deployment it needed has run to its end). Returns what was removed."""
    removed = []
    for service_dir in service_dirs:
        replaced = Path(service_dir) / REPLACED_NAME
        if replaced.is_dir():
            shutil.rmtree(replaced)
            removed.append(replaced)
    return removed


def service_secrets(service_dir: str | Path) -> dict[str, str]:
    """The deployment's credentials (empty for services without any)."""
    secrets_file = Path(service_dir) / "secrets.env"
    return read_secrets(secrets_file) if secrets_file.exists() else {}


def deployment(service_dir: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """What a client needs to reach a running deployment: its endpoint.json and its secrets."""
    return read_json(Path(service_dir) / "endpoint.json"), service_secrets(service_dir)


def _failure(service_dir: Path, handle: dict[str, Any], what: str) -> ServiceError:
    log = Path(handle.get("log", service_dir / LOG_NAME))
    return ServiceError(
        f"service {handle.get('kind')} of experiment {handle.get('experiment')}: {what}\n"
        f"--- last lines of {log} ---\n{tail(log)}"
    )


def wait_ready(
    service_dir: str | Path, timeout_s: float, interval_s: float, queue_timeout_s: float = 86400
) -> dict[str, Any]:
    """Poll for endpoint.json, then the kind's readiness probe, within ``timeout_s``.

    A job still waiting in a queue (SLURM) has ``queue_timeout_s`` to start; ``timeout_s`` counts
    from its start. On failure the service is stopped and a ServiceError carries its log tail.
    """
    service_dir = Path(service_dir)
    handle = read_json(service_dir / "handle.json")
    launcher = get_launcher(handle["launcher"])
    service = SERVICES.create(handle["kind"])
    secrets = service_secrets(service_dir)
    endpoint_file = service_dir / "endpoint.json"
    start = time.monotonic()
    probe_timeout = max(0.5, min(5.0, interval_s * 10))

    def alive() -> str | None:
        state = launcher.state(handle)
        if state.startswith(("ended", "orphaned")):
            return f"the service job ended before it was ready ({state})"
        return None

    def check() -> None:
        if not endpoint_file.exists():
            raise probes.NotReady(f"{endpoint_file} not written yet")
        if service.loopback_only:  # reachable on its own node only: the service job probes it there
            if not (service_dir / NODE_READY_NAME).is_file():
                raise probes.NotReady(f"{service_dir / NODE_READY_NAME} not written yet (probed on its node)")
            return
        endpoint = read_json(endpoint_file)
        left = timeout_s - (time.monotonic() - start)
        service.probe(endpoint, secrets, timeout=max(0.1, min(probe_timeout, left)))

    def started() -> None:
        state = launcher.state(handle)
        if state.startswith("pending"):
            raise probes.NotReady(f"the service job is still queued ({state})")

    try:
        probes.poll(started, queue_timeout_s, min(interval_s * 4, 1.0), alive=alive, max_interval_s=5.0)
        start = time.monotonic()
        probes.poll(check, timeout_s, interval_s, alive=alive, max_interval_s=max(interval_s, 1.0))
    except probes.NotReady as exc:
        how = stop(service_dir)
        raise _failure(service_dir, handle, f"{exc} (service stopped: {how['how']})") from None
    endpoint = read_json(endpoint_file)
    ready = {
        "ready_at": time.time(),
        "waited_s": round(time.monotonic() - start, 3),
        "lag_after_start_s": round(time.time() - endpoint["started_at"], 3),
        "host": endpoint["host"],
        "port": endpoint["port"],
        "node": endpoint.get("node"),
    }

    write_json(service_dir / "ready.json", ready)
    return ready


def stop(service_dir: str | Path, grace_s: float | None = None) -> dict[str, Any]:
    """Stop the service job of ``service_dir``; write and return stopped.json."""
    service_dir = Path(service_dir)
    if not (service_dir / "handle.json").is_file():  # stopped and forgotten already
        if (service_dir / "stopped.json").is_file():
            return {**read_json(service_dir / "stopped.json"), "how": "already ended"}
        raise ServiceError(f"{service_dir}: no deployment here (no handle.json, no stopped.json)")
    handle = read_json(service_dir / "handle.json")
    grace = handle.get("grace_s", 10.0) if grace_s is None else grace_s
    how = get_launcher(handle["launcher"]).stop(handle, grace)
    stopped = {"stopped_at": time.time(), "how": how, "handle": handle}
    write_json(service_dir / "stopped.json", stopped)
    return stopped


def running(service_dir: str | Path) -> bool:
    """True while the service job of ``service_dir`` has not been stopped and it, or any process it
    started (orphaned when the job itself was killed), is alive."""
    service_dir = Path(service_dir)
    handle_file = service_dir / "handle.json"
    if not handle_file.exists():
        return False
    handle = read_json(handle_file)
    stopped_file = service_dir / "stopped.json"
    if stopped_file.exists() and read_json(stopped_file).get("handle", {}).get("pid") == handle.get("pid"):
        return False
    return not get_launcher(handle["launcher"]).state(handle).startswith("ended")


#: files that describe a live deployment (Snakemake temp() outputs): stale once it has ended
LIVE_FILES = ("handle.json", "ready.json", "prepared.json")


def forget(service_dir: str | Path) -> bool:
    """Remove the live-deployment files of an ended deployment, so a rerun deploys afresh instead of
    trusting an endpoint nobody serves any more. True when it had been ready (points may depend on it).

    A rerun then measures every point of that experiment again, on the new deployment (Snakemake
    reruns whatever consumed the old one): all points of an experiment come from one deployment. The
    points measured on the old one are kept in their attempts/ (``keep_superseded_points``)."""
    was_ready = (Path(service_dir) / "ready.json").is_file()
    for name in LIVE_FILES:
        (Path(service_dir) / name).unlink(missing_ok=True)
    return was_ready


def ensure_alive(service_dir: str | Path) -> None:
    """Raise ServiceError unless the deployment in ``service_dir`` is still running. A deployment that
    ended behind the workflow's back (killed, its job cancelled, a run killed outright) leaves a
    stale ready.json: its live files are removed, so running the workflow again deploys afresh."""
    service_dir = Path(service_dir)
    if not (service_dir / "handle.json").is_file():
        return  # not deployed by the workflow (e.g. `aibench run-client` against any endpoint)
    handle = read_json(service_dir / "handle.json")
    if handle["launcher"] == "slurm":
        # A client job runs in the rule image, maybe on another node: no SLURM client there (as on
        # MeluXina). Liveness comes from the heartbeat the service job keeps on the shared filesystem.
        why = heartbeat.problem(service_dir / heartbeat.FILE_NAME)
        if why is None and not (service_dir / "stopped.json").is_file():
            return
        # Not forgotten here: the handle is what lets the workflow's error handler (on the login node)
        # cancel the job, should it still be queued or running behind a stale heartbeat.
        raise ServiceError(
            f"the deployment in {service_dir} is no longer running ({why or 'stopped'}): run the "
            "workflow again to deploy it afresh"
        )
    state = get_launcher(handle["launcher"]).state(handle)
    if state.startswith(("ended", "orphaned")) or (service_dir / "stopped.json").is_file():
        if state.startswith("orphaned"):
            stop(service_dir)  # what is left of it goes first: the handle is needed to find it
        forget(service_dir)
        raise ServiceError(
            f"the deployment in {service_dir} is no longer running ({state}); its endpoint is stale and "
            "has been forgotten: run the workflow again to deploy it afresh"
        )


def stop_all(service_dirs: list[Path], forget_ended: bool = True) -> list[str]:
    """Stop every service job still alive among ``service_dirs``; returns what was stopped. With
    ``forget_ended``, every ended deployment's live files are removed (see ``forget``)."""
    stopped = []
    for service_dir in service_dirs:
        try:
            if running(service_dir):
                how = stop(service_dir)["how"]
                stopped.append(f"{service_dir} ({how})")
            if forget_ended and forget(service_dir):
                from aibench.clients.runner import keep_superseded_points

                kept = keep_superseded_points(service_dir.parent / "points")
                if kept:
                    stopped.append(f"{service_dir}: its deployment is over; {len(kept)} measured points kept "
                                   "in their attempts/ and measured again by the next run")  # fmt: skip
        except Exception as exc:  # keep going: every other service must still be stopped
            stopped.append(f"{service_dir}: could not stop: {exc}")
    return stopped
