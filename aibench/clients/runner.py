"""Run one point: a client kind against an endpoint, timed, written in the common schema."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.progress import INTERVAL_S, STALL_S, reporting
from aibench.contracts import ClientNodes
from aibench.files import read_json
from aibench.lifecycle import deployment, ensure_alive
from aibench.monitoring.prometheus import wait_targets_up
from aibench.results.schema import PointResult, summary_document, write_point

LOG = logging.getLogger("aibench.client")  # the run_client rule's logger (snakemake_glue.script_logger)


def run_point(
    *,
    client_kind: str,
    endpoint: dict[str, Any],
    secrets: dict[str, str],
    params: dict[str, Any],
    out_dir: str | os.PathLike[str],
    timeout_s: float,
    experiment: str = "adhoc",
    point: str = "adhoc",
    repeat: int = 0,
    swept: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    client_recipe: str | None = None,
    deployment: str | None = None,
    progress: dict[str, float] | None = None,
    bar: bool | None = False,
) -> dict[str, Any]:
    """Run the load, write its raw records and summary into ``out_dir`` (a PointDir); return the summary.
    While it runs, its progress goes to the log every ``progress["interval_s"]`` (with a warning after
    ``progress["stall_s"]`` without a completion), and to a live bar with ``bar`` (None: on a terminal)."""
    client = CLIENTS.create(client_kind)
    start_wall = time.time()
    start = time.monotonic()
    every = {**{"interval_s": INTERVAL_S, "stall_s": STALL_S}, **(progress or {})}
    try:
        with reporting(LOG, every["interval_s"], every["stall_s"], bar):
            result = client.run(endpoint, secrets, params, timeout_s)
    except Exception as exc:
        result = PointResult(metrics=[], raw_csv=b"", status="failed", error=f"{type(exc).__name__}: {exc}")
    duration = time.monotonic() - start
    summary = summary_document(
        experiment=experiment,
        point=point,
        repeat=repeat,
        params=params,
        swept=swept or {},
        service={"endpoint": f"{endpoint['host']}:{endpoint['port']}", **(service or {})},
        client={"kind": client_kind, "recipe": client_recipe},
        window={"start": start_wall, "end": start_wall + duration, "duration_s": duration},
        result=result,
        deployment=deployment,
    )
    write_point(out_dir, summary, result.raw_csv)
    return summary


def run_point_against(
    service_dir: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    monitor_ready: str | os.PathLike[str] | None = None,
    client_nodes: ClientNodes | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run a point against the deployment in ``service_dir`` (its endpoint and secrets), or against
    the replicas in a list of them (the client spreads its requests over their endpoints; summary.json
    lists each under ``service.replicas``).

    With ``monitor_ready`` (the run's Prometheus), the load starts only once Prometheus scrapes
    every exporter of the service, so the point's window is watched from its first second. With
    ``client_nodes`` of more than one node, the load comes from that many at once (aibench.clients.fanout).
    """
    dirs = service_dir if isinstance(service_dir, list) else [service_dir]
    for where in dirs:
        ensure_alive(where)
    found = [deployment(where) for where in dirs]
    ids = [e.deployment for e, _ in found]
    settings["service"] = {**settings.get("service", {}), "deployment": found[0][0].deployment}
    if len(found) > 1:
        settings["service"]["replicas"] = [
            {"deployment": e.deployment, "endpoint": f"{e.host}:{e.port}"} for e, _ in found
        ]
    targets = sum(len(e.scraped_exporters) for e, _ in found)
    if monitor_ready and targets:
        experiment = settings.get("experiment", "adhoc")
        waited = wait_targets_up(read_json(monitor_ready), experiment, targets, deadline_s=60,
                                 deployment=ids if len(ids) > 1 else ids[0])  # fmt: skip
        LOG.info("Prometheus scrapes all %d exporters (waited %.2f s); the load starts", targets, waited)
    if client_nodes is not None and client_nodes.nodes > 1:
        from aibench.clients.fanout import run_point_from_nodes

        return run_point_from_nodes([os.fspath(d) for d in dirs], out_dir, client_nodes, **settings)
    client_endpoint, secrets = endpoint_of(dirs)
    return run_point(endpoint=client_endpoint, secrets=secrets, out_dir=out_dir, **settings)


def endpoint_of(
    service_dirs: list[str | os.PathLike[str]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """What a client is given of the deployment in ``service_dirs``: its endpoint and secrets, or with
    replicas (several dirs) the first one's, carrying every replica's endpoint and secrets."""
    found = [deployment(where) for where in service_dirs]
    endpoint, secrets = found[0]
    client_endpoint = endpoint.for_clients()
    if len(found) > 1:
        client_endpoint = {**client_endpoint, "replicas": [
            {"endpoint": e.for_clients(), "secrets": s} for e, s in found
        ]}  # fmt: skip
    return client_endpoint, secrets


def prepare_against(
    service_dir: str | os.PathLike[str], client_kind: str, params: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """The client kind's prepare step against the deployment in ``service_dir``."""
    endpoint, secrets = deployment(service_dir)
    start = time.monotonic()
    output = CLIENTS.create(client_kind).prepare(endpoint.for_clients(), secrets, params, timeout_s)
    return {"client": client_kind, "prepared": output is not None, "duration_s": time.monotonic() - start}
