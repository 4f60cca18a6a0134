"""Service lifecycle with the local launcher: real redis-server, real exporters, real Prometheus."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import psutil
import pytest

from aibench import lifecycle
from aibench.clients.runner import run_point_against
from aibench.contracts import DeploymentSpec, Placement
from aibench.errors import ServiceError
from aibench.files import read_json
from aibench.monitoring.prometheus import PrometheusClient, scrape_point
from aibench.probes import NotReady, poll, redis_ping
from aibench.secrets import read_secrets
from aibench.services import SERVICES
from tests.conftest import ROOT

REDIS = {
    "io_threads": 1,
    "maxmemory_mb": 0,
    "maxmemory_policy": "noeviction",
    "maxclients": 1000,
    "appendonly": False,
}


def family(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_deploy_ready_stop_leaves_no_process(tmp_path: Path, no_leftovers: float) -> None:
    service_dir = tmp_path / "exp" / "service"
    handle = lifecycle.deploy(
        service_dir, DeploymentSpec("exp", "redis", REDIS, targets_dir=str(tmp_path / "targets"))
    )
    ready = lifecycle.wait_ready(service_dir, timeout_s=20, interval_s=0.05)
    secrets_file = service_dir / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((service_dir / "redis.conf").stat().st_mode) == 0o600
    password = read_secrets(secrets_file)["REDIS_PASSWORD"]
    assert len(password) >= 24
    # the password is required, and never written to handle, endpoint or logs
    with pytest.raises(NotReady, match=r"Authentication required|NOAUTH|AuthenticationError"):
        redis_ping(ready["host"], ready["port"], None)
    redis_ping(ready["host"], ready["port"], password)
    for name in ("handle.json", "endpoint.json", "ready.json", "spec.json", "service.log"):
        assert password not in (service_dir / name).read_text(), name
    endpoint = read_json(service_dir / "endpoint.json")
    assert endpoint["host"] == "127.0.0.1"
    procs = family(handle.job.pid)
    # the service job, redis-server, process, redis and node exporters, the redis exporter's relay
    assert len(procs) == 6
    for proc in procs:
        for conn in proc.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                assert conn.laddr.ip == "127.0.0.1", (proc.cmdline(), conn)
    targets = sorted(p.name for p in (tmp_path / "targets").iterdir())
    deployment = endpoint["deployment"]  # this start's id: two deployments of exp never share a file
    assert targets == [f"exp--{deployment}--{name}.json" for name in ("node", "process", "redis")]
    stopped = lifecycle.stop(service_dir)
    assert stopped["how"] == "SIGTERM"
    assert stopped["ready"] == ready and ready["ready_at"] < stopped["stopped_at"]  # the lifecycle on record
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    assert list((tmp_path / "targets").iterdir()) == []  # targets removed on exit
    assert "SIGTERM received" in (service_dir / "service.log").read_text()
    assert lifecycle.stop(service_dir)["how"] == "already ended"


def test_hung_service_times_out_with_log_tail_and_is_stopped(tmp_path: Path, no_leftovers: float) -> None:
    service_dir = tmp_path / "hung" / "service"
    handle = lifecycle.deploy(service_dir, DeploymentSpec("hung", "redis", REDIS, grace_s=1))
    poll(
        lambda: None if (service_dir / "endpoint.json").exists() else (_ for _ in ()).throw(NotReady("")),
        10,
        0.05,
    )
    server = read_json(service_dir / "endpoint.json")["pid"]
    os.kill(server, signal.SIGSTOP)  # alive, port open, never answers: a hung server
    with pytest.raises(ServiceError) as info:
        lifecycle.wait_ready(service_dir, timeout_s=2, interval_s=0.1)
    message = str(info.value)
    assert "not ready after 2 s" in message
    assert f"last lines of {service_dir / 'service.log'}" in message
    assert "redis started, pid" in message  # the log tail
    assert "service stopped: SIG" in message
    pid = handle.job.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_service_that_exits_early_fails_at_once(tmp_path: Path, no_leftovers: float, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # redis-server cannot be found: the job exits at once
    service_dir = tmp_path / "gone" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("gone", "redis", REDIS))
    with pytest.raises(ServiceError) as info:
        lifecycle.wait_ready(service_dir, timeout_s=30, interval_s=0.05)
    assert "ended before it was ready" in str(info.value)
    assert "not found on PATH: redis-server" in str(info.value)


def test_prometheus_scrapes_the_point_window(
    tmp_path: Path, no_leftovers: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Prometheus, real exporters (process, redis, node) and the GPU exporter reading a STAND-IN
    nvidia-smi (tests/standins: no GPU on this machine), all as sidecars of one service job."""
    monkeypatch.setenv("PATH", f"{ROOT / 'tests' / 'standins'}:{os.environ['PATH']}")
    targets = tmp_path / "monitoring" / "targets"
    monitor_dir = tmp_path / "monitoring"
    prometheus = {"scrape_interval_s": 1, "targets_dir": str(targets)}
    lifecycle.deploy(monitor_dir, DeploymentSpec("monitoring", "prometheus", prometheus))
    service_dir = tmp_path / "mon" / "service"
    mon = DeploymentSpec("mon", "redis", REDIS, Placement(gpus=1), targets_dir=str(targets))
    lifecycle.deploy(service_dir, mon)
    try:
        prometheus = lifecycle.wait_ready(monitor_dir, timeout_s=30, interval_s=0.1)
        lifecycle.wait_ready(service_dir, timeout_s=30, interval_s=0.05)
        client = PrometheusClient(f"http://{prometheus['host']}:{prometheus['port']}")

        def both_up() -> None:
            result = client.query('sum(up{experiment="mon",job_id="local"})')
            if not result or float(result[0]["value"][1]) < 4:
                raise NotReady(f"targets up: {result}")

        poll(both_up, 30, 0.2)
        params = {
            "tests": "get,set",
            "clients": 10,
            "pipeline": 1,
            "data_size": 3,
            "requests": 300000,
            "keyspace": 1000,
            "threads": 0,
        }
        summary = run_point_against(
            service_dir,
            tmp_path / "point",
            client_kind="redis-benchmark",
            params=params,
            timeout_s=120,
            experiment="mon",
            point="p",
        )
        rows = scrape_point(prometheus, summary, SERVICES.create("redis").resource_queries(), 1.0)
    finally:
        lifecycle.stop(service_dir)
        lifecycle.stop(monitor_dir)
    series = {}
    for row in rows:
        series.setdefault(row["series"], []).append(row["value"])
    assert max(series["targets_up"]) == 4  # process, redis, node, gpu
    assert max(series["node_cpu_busy_cores"]) > 0.05 and max(series["node_memory_used_bytes"]) > 1e8
    assert set(series["gpu_utilization_pct"]) == {45.0}  # the stand-in's two GPUs: 87 % and 3 %
    assert set(series["gpu_memory_used_bytes"]) == {(30123 + 4) * 2**20}
    assert set(series["gpu_power_w"]) == {251.5}  # the second GPU's power is N/A: not counted as 0
    assert max(series["cpu_cores"]) > 0.05  # redis-server was busy serving the load
    assert 1e6 < max(series["rss_bytes"]) < 2e9
    assert max(series["redis_ops_per_s"]) > 1000
    assert max(series["redis_connected_clients"]) >= 1


def test_missing_exporters_get_no_targets(tmp_path: Path, no_leftovers: float, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-server").symlink_to("/usr/bin/redis-server")
    monkeypatch.setenv("PATH", str(bin_dir))  # redis-server, but no exporter on this node
    service_dir = tmp_path / "bare" / "service"
    lifecycle.deploy(
        service_dir, DeploymentSpec("bare", "redis", REDIS, targets_dir=str(tmp_path / "targets"))
    )
    try:
        lifecycle.wait_ready(service_dir, timeout_s=20, interval_s=0.05)
        assert read_json(service_dir / "endpoint.json")["exporters"] == []
        assert not list((tmp_path / "targets").glob("*.json"))  # nobody waits for exporters that never ran
        assert "not found; not monitored" in (service_dir / "service.log").read_text()
    finally:
        lifecycle.stop(service_dir)


def test_killed_service_job_leaves_nothing_behind(tmp_path: Path, no_leftovers: float) -> None:
    """The service job SIGKILLed (by the OOM killer, a stray kill): its server and exporters live on as
    orphans of its process group; the run's stop_all (onerror/onsuccess) still finds and stops them."""

    service_dir = tmp_path / "orphan" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("orphan", "redis", REDIS, targets_dir=str(tmp_path / "t")))
    lifecycle.wait_ready(service_dir, timeout_s=20, interval_s=0.05)
    handle = read_json(service_dir / "handle.json")
    children = family(handle["pid"])[1:]
    assert children  # redis-server and the exporters
    os.kill(handle["pid"], signal.SIGKILL)
    psutil.wait_procs([psutil.Process(handle["pid"])], timeout=5)
    assert all(c.is_running() for c in children)
    assert lifecycle.running(service_dir)  # orphans count as running: they must be stopped
    assert lifecycle.stop_all([service_dir]) == [f"{service_dir} (SIGTERM)"]
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert not lifecycle.running(service_dir)


def test_a_killed_service_jobs_targets_are_withdrawn_by_its_stop(tmp_path: Path, no_leftovers: float) -> None:
    """SIGKILL leaves the service job no tear-down: its file_sd targets stay until the stop removes
    them (else Prometheus scrapes a dead address for the rest of the run); another deployment's stay."""
    targets = tmp_path / "targets"
    other = targets / "exp--0123456789ab--node.json"  # another deployment of the same experiment
    service_dir = tmp_path / "exp" / "service"
    handle = lifecycle.deploy(service_dir, DeploymentSpec("exp", "redis", REDIS, targets_dir=str(targets)))
    lifecycle.wait_ready(service_dir, timeout_s=20, interval_s=0.05)
    other.write_text("[]\n")
    mine = sorted(p.name for p in targets.glob("*.json") if p != other)
    assert len(mine) == 3
    os.kill(handle.job.pid, signal.SIGKILL)
    lifecycle.stop(service_dir)  # its orphans (redis-server, exporters) too
    assert sorted(p.name for p in targets.glob("*.json")) == [other.name]


def test_the_replicas_of_an_ended_deployment_keep_its_points_once(tmp_path: Path) -> None:
    """Two replicas, both ready, both ended: their shared points are kept in attempts/ once."""
    from aibench.rundir import RunDir

    run = RunDir(tmp_path)
    for replica in (0, 1):
        where = run.service("llm", replica)
        where.path.mkdir(parents=True)
        where.ready.write_text("{}\n")
    point = run.point("llm", "concurrency-2_r0")
    point.path.mkdir(parents=True)
    point.summary.write_text('{"status": "ok"}\n')
    lines = lifecycle.stop_all(run.service_dirs())
    assert [a.name for a in point.attempts.iterdir()] == ["1"]
    assert len([line for line in lines if "measured points kept" in line]) == 1
