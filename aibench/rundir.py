"""The results directory of a run: every path and file name of its layout, and the bookkeeping on it.

Everything else (the library, rules/*.smk, scripts/, bench/) takes its paths from here, so the layout
(docs/architecture.md, 'Results'; docs/results-schema.md) is written down once. The classes are views on
paths and hold no state: ``RunDir(results).point("{experiment}", "{point}").summary`` is a Snakemake
pattern with its wildcards as much as a real file.

- :class:`RunDir`: the run's root: its experiments, monitoring and Grafana deployments, provenance,
  manifest, tidy table, figures and logs, and the names no experiment may take.
- :class:`ServiceDir`: one deployment (``<experiment>/service``, ``monitoring``, ``grafana``): spec,
  handle, endpoint, ready, stopped, secrets, log, heartbeat, the service's data and what earlier
  deployments left; which of its files describe a live deployment (forgotten once it ended).
- :class:`PointDir`: one point: summary, raw records, Prometheus window, and its attempts/ (failed or
  superseded measurements kept for the record).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import TypeVar

#: a deployment's directory inside its experiment's
SERVICE = "service"
#: the points' directories inside an experiment's
POINTS = "points"
#: the run's copies of its config and recipe files
PROVENANCE = "provenance"
MANIFEST = "manifest.json"
SUMMARY_CSV = "summary.csv"
MONITORING, GRAFANA = "monitoring", "grafana"


D = TypeVar("D", bound="_Directory")


class _Directory:
    """A view on one directory of the layout (a path-like: ``Path(view)`` is the directory)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls: type[D], where: D | str | os.PathLike[str]) -> D:
        """``where`` as this view (as it is when it is one already)."""
        return where if isinstance(where, cls) else cls(where)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def absolute(self: D) -> D:
        return type(self)(self.path.absolute())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.path))


class PointDir(_Directory):
    """One point's directory: ``<experiment>/points/<point>``."""

    SUMMARY, RAW, METRICS = "summary.json", "raw.csv.gz", "metrics.csv"
    #: the files that make a measured point (and that an attempt keeps), summary last
    RECORDS = (RAW, METRICS, SUMMARY)
    SUPERSEDED_NOTE = "superseded.txt"

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def raw(self) -> Path:
        return self.path / self.RAW

    @property
    def metrics(self) -> Path:
        """The Prometheus series over the point's window."""
        return self.path / self.METRICS

    @property
    def attempts(self) -> Path:
        return self.path / "attempts"

    @property
    def client_log(self) -> Path:
        return self.path / "client.log"

    @property
    def scrape_log(self) -> Path:
        return self.path / "scrape.log"

    @property
    def nodes(self) -> NodesDir:
        """Where a load from several client nodes meets (experiment ``client_nodes``)."""
        return NodesDir(self.path / "nodes")

    def keep_attempt(self) -> Path:
        """Copy the point's files into ``attempts/<n>/`` beside them and return that directory.

        A failed point's job then fails, so Snakemake removes its outputs and a rerun measures it
        afresh; the record of what failed, and why, stays in attempts/."""
        number = len(list(self.attempts.glob("*"))) + 1 if self.attempts.is_dir() else 1
        target = self.attempts / str(number)
        target.mkdir(parents=True)
        for name in self.RECORDS:
            if (self.path / name).is_file():
                shutil.copy2(self.path / name, target / name)
        return target

    def supersede(self) -> Path:
        """Keep the measured point in its attempts/, noted as superseded (its deployment ended before
        its experiment did: the next run measures it again on a fresh one). Returns the attempt."""
        target = self.keep_attempt()
        (target / self.SUPERSEDED_NOTE).write_text(
            "measured on a deployment that ended before its experiment did\n"
        )
        return target


class NodesDir(_Directory):
    """``<point>/nodes``: how the client nodes of one point's load meet (aibench.clients.fanout). The
    coordinator writes plan.json, clock.json (+ the 0600 clock.key) and start.json; each agent its
    registration (agents/<id>.json) and its share's records (parts/<rank>.json)."""

    @property
    def plan(self) -> Path:
        return self.path / "plan.json"

    @property
    def clock(self) -> Path:
        return self.path / "clock.json"

    @property
    def clock_key(self) -> Path:
        return self.path / "clock.key"

    @property
    def start(self) -> Path:
        return self.path / "start.json"

    @property
    def job(self) -> Path:
        """The SLURM job of the client nodes (its handle), while it may run."""
        return self.path / "job.json"

    @property
    def job_script(self) -> Path:
        return self.path / "job.sh"

    @property
    def log(self) -> Path:
        return self.path / "agents.log"

    def agent(self, ident: str) -> Path:
        return self.path / "agents" / f"{ident}.json"

    def agents(self) -> list[Path]:
        return sorted((self.path / "agents").glob("*.json"))

    def part(self, rank: int) -> Path:
        return self.path / "parts" / f"{rank}.json"

    def reset(self) -> None:
        """Remove what an earlier attempt of the point left."""
        shutil.rmtree(self.path, ignore_errors=True)
        (self.path / "agents").mkdir(parents=True)
        (self.path / "parts").mkdir()


#: the point summaries of a run, relative to its root (what marks a point measured): an experiment's
#: points, and those of each deployment of an experiment with a service sweep (``<experiment>/<id>/``)
SUMMARY_GLOB = f"*/{POINTS}/*/{PointDir.SUMMARY}"
DEPLOYMENT_SUMMARY_GLOB = f"*/*/{POINTS}/*/{PointDir.SUMMARY}"


def summary_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every point summary of the run at ``root``, sorted."""
    base = Path(root)
    return sorted([*base.glob(SUMMARY_GLOB), *base.glob(DEPLOYMENT_SUMMARY_GLOB)])


class ServiceDir(_Directory):
    """One deployment's directory: ``<experiment>/service`` (``<experiment>/<id>/service`` for each
    deployment of a service sweep), or the run's ``monitoring``/``grafana``."""

    SPEC, HANDLE, ENDPOINT = "spec.json", "handle.json", "endpoint.json"
    READY, STOPPED, PREPARED = "ready.json", "stopped.json", "prepared.json"
    SECRETS, LOG, HEARTBEAT, NODE_READY = "secrets.env", "service.log", "heartbeat.json", "node_ready.json"
    NODE_INFO = "node.json"
    #: where a service keeps its on-disk state (a database, Prometheus' TSDB), and where an earlier
    #: deployment's goes when the service is deployed again
    DATA, REPLACED = "data", "replaced"
    #: files that describe a live deployment (Snakemake temp() outputs): stale once it has ended
    LIVE = (HANDLE, READY, PREPARED)
    #: what the service job and the waiting rule write about one deployment: stale at the next deploy
    PER_DEPLOYMENT = (ENDPOINT, READY, STOPPED, HEARTBEAT, NODE_READY, NODE_INFO)
    #: the deployment's records an archive keeps (besides its logs)
    RECORDS = (SPEC, ENDPOINT, STOPPED, LOG)

    @property
    def spec(self) -> Path:
        """What the service job runs (contracts.JobSpec); never secrets."""
        return self.path / self.SPEC

    @property
    def handle(self) -> Path:
        """How the launcher finds the job (contracts.Handle)."""
        return self.path / self.HANDLE

    @property
    def endpoint(self) -> Path:
        """Where the service listens, written by the service job (contracts.Endpoint)."""
        return self.path / self.ENDPOINT

    @property
    def ready(self) -> Path:
        return self.path / self.READY

    @property
    def prepared(self) -> Path:
        """The client kind's once-per-deployment prepare step has run."""
        return self.path / self.PREPARED

    @property
    def stopped(self) -> Path:
        return self.path / self.STOPPED

    @property
    def secrets(self) -> Path:
        """The deployment's credentials (0600)."""
        return self.path / self.SECRETS

    @property
    def log(self) -> Path:
        """The service job's own output."""
        return self.path / self.LOG

    @property
    def heartbeat(self) -> Path:
        return self.path / self.HEARTBEAT

    @property
    def node_ready(self) -> Path:
        """A loopback-only service's readiness, probed by its service job on its own node."""
        return self.path / self.NODE_READY

    @property
    def node_info(self) -> Path:
        """The hardware of the node the service job runs on (aibench.hardware), written as it starts."""
        return self.path / self.NODE_INFO

    @property
    def data(self) -> Path:
        return self.path / self.DATA

    @property
    def replaced(self) -> Path:
        return self.path / self.REPLACED

    @property
    def pid_file(self) -> Path:
        """The local launcher's record of the job's pid."""
        return self.path / "service.pid"

    @property
    def job_script(self) -> Path:
        """The SLURM launcher's batch script."""
        return self.path / "service.sbatch"

    def rule_log(self, step: str) -> Path:
        """The log of a workflow rule on this deployment: deploy, wait, stop, prepare."""
        return self.path / f"{step}.log"

    def exporter_log(self, exporter: str) -> Path:
        return self.path / f"exporter-{exporter}.log"

    def exporter_env(self, exporter: str) -> Path:
        """The 0600 env file of an exporter run in its image."""
        return self.env_file(f"exporter-{exporter}")

    def env_file(self, stage: str) -> Path:
        """The 0600 env file of a containerized command of ``stage`` (service, prepare-0, exporter-node)."""
        return self.path / f"{stage}.env"

    @property
    def experiment_points(self) -> list[PointDir]:
        """The measured points of this deployment (none for monitoring and Grafana)."""
        return [PointDir(p.parent) for p in sorted(self.path.parent.glob(f"{POINTS}/*/{PointDir.SUMMARY}"))]

    def clear_per_deployment(self) -> None:
        """Remove what an earlier deployment wrote about itself, before a new one starts."""
        for name in self.PER_DEPLOYMENT:
            (self.path / name).unlink(missing_ok=True)

    def forget(self) -> bool:
        """Remove the live-deployment files of an ended deployment, so a rerun deploys afresh instead of
        trusting an endpoint nobody serves any more. True when it had been ready (points may depend on it)."""
        was_ready = self.ready.is_file()
        for name in self.LIVE:
            (self.path / name).unlink(missing_ok=True)
        return was_ready

    def retire_state(self) -> Path | None:
        """Move an earlier deployment's data/ into replaced/<time>/ (a rename: instant, same filesystem),
        so the new deployment starts from fresh state - MariaDB initialises a new data directory with the
        new passwords, Redis loads no earlier dump, Chroma no earlier collection. Returns where it went
        (None: there was no data/)."""
        if not self.data.exists():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.replaced / f"{stamp}-{uuid.uuid4().hex[:6]}"
        target.mkdir(parents=True)
        self.data.rename(target / self.DATA)
        return target

    def discard_retired(self) -> Path | None:
        """Remove what earlier deployments set aside; returns what was removed (None: nothing)."""
        if not self.replaced.is_dir():
            return None
        shutil.rmtree(self.replaced)
        return self.replaced

    def supersede_points(self) -> list[Path]:
        """Keep every measured point of this deployment's experiment in its attempts/ (its deployment is
        over, so the next run measures it again on a fresh one); returns the attempt directories."""
        return [point.supersede() for point in self.experiment_points]


class RunDir:
    """The results directory of one run (see docs/architecture.md, 'Results')."""

    #: the run's own entries at the top of the results directory, beside the experiments' folders:
    #: no experiment may take one of these names
    ENTRIES = frozenset(
        {MONITORING, GRAFANA, "figures", "logs", PROVENANCE, "paper", SUMMARY_CSV, MANIFEST, "report.html"}
    )
    #: the run's records an archive keeps
    RECORDS = (MANIFEST, SUMMARY_CSV)

    def __init__(self, results: str | os.PathLike[str]) -> None:
        self.root = Path(results)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @property
    def monitoring(self) -> ServiceDir:
        """The run's Prometheus deployment."""
        return ServiceDir(self.root / MONITORING)

    @property
    def targets(self) -> Path:
        """Prometheus file_sd directory: one JSON file per exporter of a running service."""
        return self.root / MONITORING / "targets"

    @property
    def grafana(self) -> ServiceDir:
        return ServiceDir(self.root / GRAFANA)

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def summary(self) -> Path:
        """The tidy table over all points."""
        return self.root / SUMMARY_CSV

    @property
    def logs(self) -> Path:
        """The logs of the run-wide rules (aggregate, plots, manifest)."""
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def figure(self, experiment: str, name: str, ext: str) -> Path:
        return self.root / "figures" / experiment / f"{name}.{ext}"

    def experiment(self, name: str) -> Path:
        return self.root / name

    # ``unit`` below: a deployment's directory relative to the root, ``<experiment>`` or, for each
    # deployment of a service sweep, ``<experiment>/<id>`` (recipes.loader.Deployment.unit)
    def service(self, unit: str, replica: int | None = None) -> ServiceDir:
        """A deployment's service job: ``<unit>/service``, or replica ``n`` of several: ``service-r<n>``."""
        return ServiceDir(self.root / unit / (SERVICE if replica is None else f"{SERVICE}-r{replica}"))

    def service_job(self, relative: str) -> ServiceDir:
        """A service job's directory by its path from the root (what :meth:`service` gives, or a
        pattern: ``"{service}"``)."""
        return ServiceDir(self.root / relative)

    def point(self, unit: str, point: str) -> PointDir:
        return PointDir(self.root / unit / POINTS / point)

    def where(self, service_dir: ServiceDir) -> tuple[str, str]:
        """(experiment, deployment) of a service job's directory: its first component, then the rest
        (``redis-io``, ``io_threads-2/service-r1``; ``monitoring``, ``""`` for the run's own)."""
        parts = service_dir.path.relative_to(self.root).parts
        if len(parts) == 1:
            return parts[0], ""
        return parts[0], "/".join(parts[1:-1] + (() if parts[-1] == SERVICE else parts[-1:]))

    def service_dirs(self) -> list[ServiceDir]:
        """Every service directory of this run, the monitoring services (Prometheus, Grafana) included."""
        dirs = [d for d in (self.monitoring, self.grafana) if d.path.is_dir()]
        found = [path for depth in ("*", "*/*") for name in (SERVICE, f"{SERVICE}-r*")
                 for path in self.root.glob(f"{depth}/{name}")]  # fmt: skip
        dirs += [ServiceDir(p) for p in sorted(found) if p.is_dir()]
        return dirs

    def client_node_jobs(self) -> list[NodesDir]:
        """The points whose client nodes' SLURM job may still be queued or running (its job.json)."""
        found = [p for depth in ("*", "*/*") for p in self.root.glob(f"{depth}/{POINTS}/*/nodes/job.json")]
        return [NodesDir(p.parent) for p in sorted(found)]

    def measured_points(self) -> list[PointDir]:
        """Every point with a summary, sorted by path."""
        return [PointDir(p.parent) for p in summary_files(self.root)]


def service_of(path: str | os.PathLike[str]) -> ServiceDir:
    """The service directory holding a service file (handle.json, ready.json, ...)."""
    return ServiceDir(Path(path).parent)


def is_record(relative: PurePath) -> bool:
    """Whether the file at ``relative`` (inside a results directory) is one of the run's records: its
    manifest, tidy table and provenance copies; a point's records and logs; a deployment's records and
    logs. Not: service data, figures, the report, the services' own config files."""
    parts = relative.parts
    if not parts:
        return False
    if parts[0] == PROVENANCE or (len(parts) == 1 and parts[0] in RunDir.RECORDS):
        return True
    # a deployment of a service sweep nests its service/ and points/ one level deeper
    for depth in (1, 2):
        if len(parts) >= depth + 3 and parts[depth] == POINTS:
            return parts[-1] in PointDir.RECORDS or parts[-1].endswith(".log")
    monitor = len(parts) == 2 and parts[0] in (MONITORING, GRAFANA)
    deployment = any(len(parts) == depth + 2 and _is_service(parts[depth]) for depth in (1, 2)) or monitor
    return deployment and (parts[-1] in ServiceDir.RECORDS or parts[-1].endswith(".log"))


def is_fetched(relative: PurePath) -> bool:
    """Whether ``aibench fetch-results`` brings the file at ``relative`` home: the run's records (as an
    archive keeps them), its figures and its report. Owner-only files are left out besides, by mode."""
    parts = relative.parts
    return is_record(relative) or (bool(parts) and (parts[0] == "figures" or parts == ("report.html",)))


def _is_service(name: str) -> bool:
    """A service job's directory name: ``service``, or a replica's ``service-r<n>``."""
    return name == SERVICE or (name.startswith(f"{SERVICE}-r") and name[len(SERVICE) + 2 :].isdigit())


def discard_retired_state(service_dirs: Iterable[ServiceDir]) -> list[Path]:
    """Remove the earlier deployments' state set aside in ``service_dirs`` (at the end of a successful
    run: every deployment it needed has run to its end). Returns what was removed."""
    return [removed for d in service_dirs if (removed := d.discard_retired()) is not None]
