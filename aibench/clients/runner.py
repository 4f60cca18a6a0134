"""Run one point: a client kind against an endpoint, timed, written in the common schema."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from aibench.clients import CLIENTS
from aibench.results.schema import PointResult, summary_document, write_point


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
) -> dict[str, Any]:
    """Run the load, write raw.csv.gz + summary.json into ``out_dir``; return the summary."""
    client = CLIENTS.create(client_kind)
    start_wall = time.time()
    start = time.monotonic()
    try:
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
    )
    write_point(Path(out_dir), summary, result.raw_csv)
    return summary


def run_point_against(
    service_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    monitor_ready: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run a point against the deployment in ``service_dir`` (its endpoint.json and secrets.env).

    With ``monitor_ready`` (the run's Prometheus), the load starts only once Prometheus scrapes
    every exporter of the service, so the point's window is watched from its first second.
    """
    from aibench.files import read_json
    from aibench.lifecycle import deployment, ensure_alive
    from aibench.monitoring.prometheus import scraped_exporters, wait_targets_up

    ensure_alive(service_dir)
    endpoint, secrets = deployment(service_dir)
    if endpoint.get("deployment"):
        settings["service"] = {**settings.get("service", {}), "deployment": endpoint["deployment"]}
    targets = scraped_exporters(endpoint)
    if monitor_ready and targets:
        experiment = settings.get("experiment", "adhoc")
        wait_targets_up(read_json(monitor_ready), experiment, len(targets), deadline_s=60,
                        deployment=endpoint.get("deployment"))  # fmt: skip
    return run_point(endpoint=endpoint, secrets=secrets, out_dir=out_dir, **settings)


def prepare_against(
    service_dir: str | os.PathLike[str], client_kind: str, params: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """The client kind's prepare step against the deployment in ``service_dir``."""
    from aibench.lifecycle import deployment

    endpoint, secrets = deployment(service_dir)
    start = time.monotonic()
    output = CLIENTS.create(client_kind).prepare(endpoint, secrets, params, timeout_s)
    return {"client": client_kind, "prepared": output is not None, "duration_s": time.monotonic() - start}


def keep_superseded_points(points_dir: str | os.PathLike[str]) -> list[Path]:
    """Keep every measured point under ``points_dir`` in its attempts/ (its deployment is over, so
    the next run measures it again on a fresh one); returns the attempt directories."""
    kept = []
    for summary in sorted(Path(points_dir).glob("*/summary.json")):
        target = keep_failed_attempt(summary.parent)
        (target / "superseded.txt").write_text(
            "measured on a deployment that ended before its experiment did\n"
        )
        kept.append(target)
    return kept


def keep_failed_attempt(point_dir: str | os.PathLike[str]) -> Path:
    """Copy a failed point's files into ``attempts/<n>/`` beside them and return that directory.

    The workflow then fails the point's job, so Snakemake removes the point's outputs and a rerun
    measures it afresh; the record of what failed, and why, stays in attempts/."""
    import shutil

    point = Path(point_dir)
    attempts = point / "attempts"
    number = len(list(attempts.glob("*"))) + 1 if attempts.is_dir() else 1
    target = attempts / str(number)
    target.mkdir(parents=True)
    for name in ("summary.json", "raw.csv.gz", "metrics.csv"):
        if (point / name).is_file():
            shutil.copy2(point / name, target / name)
    return target
