"""The typed contracts (aibench.contracts): records to JSON and back with exactly their keys, the launcher
states, and the service job's port plan (aibench.serve)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from aibench import serve
from aibench.contracts import (
    DeploymentSpec,
    Endpoint,
    ExporterRecord,
    Handle,
    JobSpec,
    Placement,
    Readiness,
    Runtime,
)
from aibench.launchers import JobState, JobStatus
from aibench.launchers.local import LocalJob
from aibench.launchers.slurm import SlurmJob
from aibench.monitoring import sidecars
from aibench.paths import PROJECT_ROOT
from aibench.recipes import load_service
from aibench.records import RecordError
from aibench.rundir import ServiceDir
from aibench.serve import plan_ports
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext

SPEC = DeploymentSpec(
    "exp", "redis", {"maxclients": 10},
    Placement("slurm", {"resources": {"cpus": 2}}, Runtime("apptainer", {"binary": "apptainer"}), "auto", 1),
    targets_dir="/r/monitoring/targets", grace_s=3.0, labels={"team": "a"}, image="docker://redis:7",
    readiness=Readiness(30.0, 0.05),
)  # fmt: skip
LOCAL = LocalJob("aibench-exp-redis", 41, 41, 123456, "host1", "/r/exp/service/service.log",
                 "/r/exp/service/service.pid", 1700000000.0)  # fmt: skip


def test_deployment_spec_round_trips_as_plain_json() -> None:
    data = SPEC.to_json()
    assert json.loads(json.dumps(data)) == data  # plain values only: Snakemake's params trigger compares them
    assert DeploymentSpec.from_json(data, "params") == SPEC
    assert DeploymentSpec.from_json(DeploymentSpec("e", "redis", {}).to_json(), "p").placement == Placement()


def test_job_spec_keeps_the_spec_json_keys(tmp_path: Path) -> None:
    service_dir = ServiceDir(tmp_path / "exp" / "service")
    job = JobSpec.for_deployment(SPEC, service_dir, "abc123")
    path = service_dir.spec
    job.write(path)
    data = json.loads(path.read_text())
    assert set(data) == {"kind", "experiment", "params", "secrets_file", "workdir", "datadir", "bind_host",
                         "targets_dir", "grace_s", "labels", "runtime", "image", "apptainer", "gpus",
                         "readiness"}  # fmt: skip
    assert data["runtime"] == "apptainer" and data["apptainer"] == {"binary": "apptainer"}
    assert data["labels"] == {"experiment": "exp", "service": "redis", "deployment": "abc123", "team": "a"}
    assert data["readiness"] == {"timeout_s": 30.0, "interval_s": 0.05}
    back = JobSpec.read(path)
    assert back == job and back.deployment == "abc123" and back.secrets_file == service_dir.secrets
    assert back.targets_dir == Path("/r/monitoring/targets") and back.image_of("docker://other") == SPEC.image


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d.pop("grace_s"), r"missing 'grace_s'"),
     (lambda d: d.update(setup_timeout_s=60), r"unknown 'setup_timeout_s'"),  # a key nobody writes
     (lambda d: d["readiness"].pop("interval_s"), r"readiness: not a valid Readiness record: missing 'inter"),
     ],
)  # fmt: skip
def test_a_spec_with_a_missing_or_unknown_key_is_refused_naming_its_file(
    tmp_path: Path, change: object, message: str
) -> None:
    job = JobSpec.for_deployment(SPEC, ServiceDir(tmp_path), "d")
    data = job.to_json()
    change(data)  # type: ignore[operator]
    (tmp_path / "spec.json").write_text(json.dumps(data))
    with pytest.raises(RecordError, match=rf"^{tmp_path / 'spec.json'}: .*{message}"):
        JobSpec.read(tmp_path / "spec.json")


def test_handles_of_both_launchers(tmp_path: Path) -> None:
    local = Handle(LOCAL, "redis", "exp", 10.0)
    data = local.to_json()
    assert data["launcher"] == "local" and data["pid"] == 41 and "job_id" not in data
    assert Handle.from_json(data, "h") == local and local.job.ident == "41"
    slurm = Handle(SlurmJob("j", "123", "/l", "/s", 1.0), "redis", "exp", 10.0)
    assert Handle.from_json(slurm.to_json(), "h") == slurm
    assert slurm.to_json()["job_id"] == "123" and "pid" not in slurm.to_json() and slurm.job.node is None
    (tmp_path / "handle.json").write_text(json.dumps({**data, "launcher": "pbs"}))
    with pytest.raises(RecordError, match=r"handle.json: field 'launcher': 'pbs' is not a launcher"):
        Handle.read(tmp_path / "handle.json")
    with pytest.raises(RecordError, match=r"missing 'grace_s'"):
        Handle.from_json({k: v for k, v in data.items() if k != "grace_s"}, "h")
    with pytest.raises(RecordError, match=r"unknown 'job_id'"):
        Handle.from_json({**data, "job_id": "1"}, "h")


def test_endpoint_for_clients_and_its_scraped_exporters(tmp_path: Path) -> None:
    exporters = (ExporterRecord("process", 1, True), ExporterRecord("redis-exporter", 2, False))
    endpoint = Endpoint("ollama", "127.0.0.1", 11434, "n1", 7, 1.0, "d", exporters, {"model": "m"})
    endpoint.write(tmp_path / "endpoint.json")
    assert json.loads((tmp_path / "endpoint.json").read_text())["exporters"][1] == {
        "name": "redis-exporter", "port": 2, "scraped": False}  # fmt: skip
    back = Endpoint.read(tmp_path / "endpoint.json")
    assert back == endpoint and [e.name for e in back.scraped_exporters] == ["process"]
    assert back.for_clients() == {"host": "127.0.0.1", "port": 11434, "model": "m"}
    (tmp_path / "bad.json").write_text('{"host": "h", "port": 1}')
    with pytest.raises(RecordError, match=r"bad.json: not a valid Endpoint record: missing 'deployment'"):
        Endpoint.read(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RecordError, match=r"broken.json: not JSON"):
        Endpoint.read(tmp_path / "broken.json")


def test_job_states() -> None:
    assert str(JobStatus(JobState.ENDED, "CANCELLED")) == "ended: CANCELLED"
    assert str(JobStatus(JobState.RUNNING)) == "running"
    orphaned = JobStatus(JobState.ORPHANED, "2 left")
    assert orphaned.job_over and not orphaned.ended and not orphaned.pending
    assert JobStatus(JobState.PENDING, "PD").pending and not JobStatus(JobState.UNKNOWN).job_over


@pytest.mark.parametrize("name", SERVICES.names())
def test_each_kind_says_how_many_exporter_ports_it_uses(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port plan gives a kind exactly ``exporter_ports`` ports: the exporters it starts use each of them
    (a server's own /metrics is scraped on the service's port)."""
    monkeypatch.setenv("AIBENCH_SCRATCH", str(tmp_path / "scratch"))
    kind = SERVICES.create(name)
    recipe = PROJECT_ROOT / "recipes" / "services" / f"{name}.yaml"
    params = load_service(recipe).params
    secrets = {**kind.make_secrets({**params, "database": "sbtest"}), "MYSQL_DATABASE": "sbtest"}
    ctx = ServiceContext("e", params, secrets, "127.0.0.1", 41000, tmp_path, tmp_path / "data")
    ports = list(range(42000, 42000 + kind.exporter_ports))
    exporters = kind.exporters(ctx, ports)
    assert sorted({e.port for e in exporters if e.command is not None}) == ports
    assert all(e.port == ctx.port for e in exporters if e.command is None)


def test_a_servers_own_metrics_endpoint_is_a_target_and_starts_nothing(tmp_path: Path) -> None:
    """vLLM serves its /metrics itself: an exporter without a command is published as a target on the
    service's own address and port, and no process is started for it."""
    server = Exporter(name="server", port=41000, command=None)
    spec = SimpleNamespace(targets_dir=tmp_path, labels={"experiment": "e"}, experiment="e", deployment="d1",
                           runtime=None)
    job = SimpleNamespace(exporters=[server], spec=spec, dirs=None, procs=[], target_names=[],
                          watch=SimpleNamespace(host="10.0.0.5"))  # fmt: skip
    serve.register_targets(job)
    serve.start_exporters(job)
    serve.withdraw_unstarted_targets(job)
    assert job.procs == [] and job.exporters == [server]
    target = json.loads((tmp_path / "e--d1--server.json").read_text())
    assert target[0]["targets"] == ["10.0.0.5:41000"] and target[0]["labels"]["exporter"] == "server"
    with pytest.raises(ValueError, match="the service's own endpoint"):
        sidecars.exporter_command(server, None, None)


def test_targets_are_registered_before_the_service_and_withdrawn_for_exporters_that_never_ran(
    tmp_path: Path,
) -> None:
    """Every scraped exporter's target is written before anything starts (Prometheus' discovery tick
    passes while the service starts); one whose program cannot be found is withdrawn, so nobody
    waits for its `up`."""
    present = Exporter(name="node", port=42001, command=Command(["true"]))
    missing = Exporter(name="ghost", port=42002, command=Command(["aibench-no-such-exporter"]))
    spec = SimpleNamespace(targets_dir=tmp_path, labels={"experiment": "e"}, experiment="e", deployment="d1",
                           runtime=SimpleNamespace(containerized=False))  # fmt: skip
    job = SimpleNamespace(exporters=[present, missing], spec=spec, dirs=ServiceDir(tmp_path / "svc"),
                          procs=[], target_names=[], watch=SimpleNamespace(host="10.0.0.5"))  # fmt: skip
    job.dirs.path.mkdir()
    serve.register_targets(job)
    assert {p.name for p in tmp_path.glob("*.json")} == {"e--d1--node.json", "e--d1--ghost.json"}
    serve.start_exporters(job)
    serve.withdraw_unstarted_targets(job)
    for proc in job.procs:
        proc.wait(timeout=10)
    assert job.exporters == [present] and job.target_names == ["e--d1--node"]
    assert {p.name for p in tmp_path.glob("*.json")} == {"e--d1--node.json"}


def test_the_port_plan_follows_the_kind_and_the_sidecars() -> None:
    redis = SERVICES.create("redis")
    count = len(sidecars.wanted(containerized=True, gpus=1))
    assert count == 3
    plan = plan_ports(redis, "127.0.0.1", "127.0.0.1", monitored=True, sidecar_count=count)
    assert len(plan.exporters) == redis.exporter_ports == 3
    assert len(plan.sidecars) == 3 and plan.backend is None
    assert len(sidecars.wanted(containerized=False, gpus=0)) == 1
    bare = plan_ports(SERVICES.create("chroma"), "127.0.0.1", "127.0.0.1", monitored=False, sidecar_count=1)
    assert bare.exporters == [] and bare.sidecars == [] and bare.backend is not None  # gated: a backend port
