"""The typed contracts between workflow, launchers and service job: deployment, job spec, handle, endpoint.

What to deploy (DeploymentSpec, with its Placement, Runtime and Readiness), what the service job runs
(JobSpec, spec.json), how a launcher finds the job again (Handle, handle.json) and where the service
listens (Endpoint, endpoint.json).

Each record goes to JSON and back with exactly its keys: a missing or unknown key is a RecordError
naming the file, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibench.launchers import Job, job_from_json
from aibench.records import Record, RecordError, checked, field_names, from_json, plain, read_object
from aibench.rundir import ServiceDir

NATIVE, APPTAINER = "native", "apptainer"


@dataclass(frozen=True)
class Readiness:
    """How long a deployment has to answer its readiness probe, and how often it is asked."""

    timeout_s: float = 600.0
    interval_s: float = 0.5

    @property
    def probe_timeout_s(self) -> float:
        """One probe's own time limit: ten poll intervals, within 0.5-5 s."""
        return max(0.5, min(5.0, self.interval_s * 10))


@dataclass(frozen=True)
class Runtime:
    """How the service job runs its commands: natively, or in images under Apptainer (its settings:
    binary, image_dir, args; the config's ``apptainer``)."""

    name: str = NATIVE
    apptainer: Mapping[str, Any] = field(default_factory=dict)

    @property
    def containerized(self) -> bool:
        return self.name == APPTAINER

    @property
    def binary(self) -> str:
        return str(self.apptainer.get("binary") or APPTAINER)


@dataclass(frozen=True)
class Placement:
    """Where a deployment runs: launcher and its options (SLURM resources, modules), runtime, the
    address it binds (``auto``: its node's), and its GPUs (aibench.slurm_settings.launch_settings_for)."""

    launcher: str = "local"
    launcher_options: Mapping[str, Any] = field(default_factory=dict)
    runtime: Runtime = field(default_factory=Runtime)
    bind_host: str = "127.0.0.1"
    gpus: int = 0


@dataclass(frozen=True)
class ClientNodes(Record):
    """How a point's load comes from several client nodes at once (experiment ``client_nodes``,
    aibench.clients.fanout): how many; where their agents run (``placement``: local processes, or one
    SLURM job of ``nodes`` nodes with the client job's options); the rule image they run in under SLURM
    (the config's ``container``, with ``placement.runtime``'s Apptainer settings); how long the agents
    may take to start and register once their job runs, and to leave the queue."""

    nodes: int
    placement: Placement = field(default_factory=Placement)
    image: str | None = None
    register_timeout_s: float = 120.0
    #: how long the client nodes' job may stay queued (the run's slurm.queue_timeout_s)
    queue_timeout_s: float = 86400.0


@dataclass(frozen=True)
class DeploymentSpec(Record):
    """What lifecycle.deploy is asked to start: a service kind with its params for an experiment.

    ``targets_dir``: the run's Prometheus file_sd directory (None: unmonitored); ``labels`` are added to
    its targets; ``image`` overrides the kind's (service_runtime apptainer). As JSON it is plain values
    only: what the deploy rules' params carry, so Snakemake's params rerun trigger can compare them."""

    experiment: str
    kind: str
    params: Mapping[str, Any]
    placement: Placement = field(default_factory=Placement)
    targets_dir: str | None = None
    grace_s: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    readiness: Readiness = field(default_factory=Readiness)


@dataclass(frozen=True)
class JobSpec(Record):
    """spec.json: what the service job (aibench.serve) runs, written by deploy; never secrets."""

    kind: str
    experiment: str
    params: Mapping[str, Any]
    secrets_file: Path
    workdir: Path
    datadir: Path
    bind_host: str
    targets_dir: Path | None
    grace_s: float
    #: experiment, service, deployment (tells this deployment's series from an earlier one's) and the
    #: caller's own labels: on every target of this deployment
    labels: Mapping[str, str]
    runtime: Runtime
    image: str | None
    gpus: int
    #: a loopback-only kind is probed by the service job on its own node, with these settings
    readiness: Readiness

    @classmethod
    def for_deployment(cls, spec: DeploymentSpec, service_dir: ServiceDir, deployment: str) -> JobSpec:
        targets = Path(spec.targets_dir).absolute() if spec.targets_dir else None
        labels = {
            "experiment": spec.experiment,
            "service": spec.kind,
            "deployment": deployment,
            **spec.labels,
        }
        return cls(
            kind=spec.kind, experiment=spec.experiment, params=spec.params, secrets_file=service_dir.secrets,
            workdir=service_dir.path, datadir=service_dir.data, bind_host=spec.placement.bind_host,
            targets_dir=targets, grace_s=spec.grace_s, labels=labels, runtime=spec.placement.runtime,
            image=spec.image, gpus=spec.placement.gpus, readiness=spec.readiness,
        )  # fmt: skip

    @property
    def deployment(self) -> str:
        return self.labels["deployment"]

    @property
    def service_dir(self) -> ServiceDir:
        return ServiceDir(self.workdir)

    def image_of(self, kind_image: str) -> str:
        """The image the service runs from: the recipe's, else its kind's."""
        return self.image or kind_image

    def to_json(self) -> dict[str, Any]:
        # the runtime stays two top-level keys, runtime (its name) and apptainer, as spec.json has had them
        out: dict[str, Any] = plain(self)
        runtime = out.pop("runtime")
        return {**out, "runtime": runtime["name"], "apptainer": runtime["apptainer"]}

    @classmethod
    def from_json(cls, data: object, where: str) -> JobSpec:
        record = dict(checked(data, (field_names(cls) | {"apptainer"}), "spec", where))
        record["runtime"] = {"name": record["runtime"], "apptainer": record.pop("apptainer")}
        return from_json(cls, record, where)


@dataclass(frozen=True)
class Handle(Record):
    """handle.json: the launcher's job, and which deployment it is (no secrets)."""

    job: Job
    kind: str
    experiment: str
    grace_s: float

    @property
    def launcher(self) -> str:
        return self.job.LAUNCHER

    #: the keys of handle.json besides the job's own
    OWN = ("kind", "experiment", "grace_s")

    def to_json(self) -> dict[str, Any]:
        return {
            **self.job.to_json(),
            "kind": self.kind,
            "experiment": self.experiment,
            "grace_s": self.grace_s,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> Handle:
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected a JSON object (handle), got {type(data).__name__}")
        job = job_from_json({k: v for k, v in data.items() if k not in cls.OWN}, where)
        checked(data, [*job.to_json(), *cls.OWN], "handle", where)  # the job's keys checked: now its own
        return cls(job, data["kind"], data["experiment"], data["grace_s"])


@dataclass(frozen=True)
class ExporterRecord:
    """One exporter the service job started: its name, port, and whether Prometheus scrapes it."""

    name: str
    port: int
    scraped: bool


@dataclass(frozen=True)
class Endpoint(Record):
    """endpoint.json: where the service listens, written by the service job once it has started.

    ``extra`` is what the kind adds for its clients and probe (Ollama's model, Grafana's user)."""

    kind: str
    host: str
    port: int
    node: str
    pid: int
    started_at: float
    deployment: str
    exporters: tuple[ExporterRecord, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def for_clients(self) -> dict[str, Any]:
        """What a client kind and a readiness probe are given: host, port and the kind's extras
        (the shape ``aibench run-client --endpoint HOST:PORT`` gives them, too)."""
        return {"host": self.host, "port": self.port, **self.extra}

    @classmethod
    def read_recorded(cls, path: str | Path) -> Endpoint:
        """endpoint.json of a deployment that may predate results schema 2.0 (a results directory or
        archive reused across versions), for the records that only report it (status, tunnel,
        manifest): the kind's extras then sat beside the fields, and ``deployment`` and an exporter's
        ``scraped`` did not exist (every exporter was a target). A live deployment's endpoint is read
        strictly (:meth:`read`)."""
        data = read_object(path)
        try:
            return cls.from_json(data, str(path))
        except RecordError:
            if not isinstance(data, Mapping) or "extra" in data:
                raise
        own = field_names(cls) - {"extra"}
        legacy = {k: v for k, v in data.items() if k in own}
        legacy.setdefault("deployment", "")
        exporters = legacy.get("exporters")
        if isinstance(exporters, list):
            legacy["exporters"] = [{"scraped": True, **e} if isinstance(e, Mapping) else e for e in exporters]
        legacy["extra"] = {k: v for k, v in data.items() if k not in own}
        return cls.from_json(legacy, str(path))

    @property
    def scraped_exporters(self) -> list[ExporterRecord]:
        """The exporters that are Prometheus targets (not those only a relay reaches)."""
        return [e for e in self.exporters if e.scraped]
