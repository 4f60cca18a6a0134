"""Records a results directory may hold from an earlier version of aibench (or a broken one) are
reported, never crash the commands that only report them: the manifest, `aibench status`, `tunnel`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from aibench.cli import main
from aibench.contracts import Endpoint
from aibench.paths import PROJECT_ROOT
from aibench.provenance import service_record
from aibench.rundir import ServiceDir

SHIPPED = PROJECT_ROOT / "examples" / "local-run.tar.gz"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """The shipped run (results schema 1.1): its endpoint.json files have no `extra`, `deployment`, or
    exporters' `scraped`."""
    with tarfile.open(SHIPPED) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "run"


def test_an_endpoint_of_an_earlier_version_is_read_for_the_record(old_run: Path) -> None:
    path = old_run / "redis-default" / "service" / "endpoint.json"
    assert "extra" not in json.loads(path.read_text())
    endpoint = Endpoint.read_recorded(path)
    assert endpoint.kind == "redis" and endpoint.deployment == "" and endpoint.extra == {}
    assert all(e.scraped for e in endpoint.exporters)  # every exporter was a target then
    record = service_record(ServiceDir(path.parent))
    assert record["kind"] == "redis" and record["node"] == endpoint.node


def test_an_old_endpoint_keeps_a_kinds_extras(tmp_path: Path) -> None:
    path = tmp_path / "endpoint.json"
    path.write_text(json.dumps({"kind": "ollama", "host": "10.0.0.1", "port": 1, "node": "n", "pid": 2,
                                "started_at": 1.0, "exporters": [], "model": "llama3.2:1b"}))  # fmt: skip
    assert Endpoint.read_recorded(path).for_clients() == {
        "host": "10.0.0.1",
        "port": 1,
        "model": "llama3.2:1b",
    }


def test_status_reports_an_unreadable_deployment_and_the_others(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (old_run / "mysql-threads" / "service" / "stopped.json").write_text("{not json")
    assert main(["status", str(old_run)]) == 0
    out = capsys.readouterr().out
    assert "unreadable:" in out and "mysql-threads" in out
    assert "redis-default" in out and "stopped" in out  # the rest is still listed
