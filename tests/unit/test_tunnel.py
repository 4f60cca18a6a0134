"""`aibench tunnel`: the ssh port forward printed from a fake results directory."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from aibench.cli import main
from aibench.errors import AibenchError
from aibench.files import write_json
from aibench.tunnel import describe, make_tunnel


def fake_run(tmp_path: Path, **hosts: str) -> Path:
    """A results directory with Prometheus and Grafana endpoints (host per service)."""
    results = tmp_path / "results"
    ports = {"monitoring": 41234, "grafana": 43121}
    for directory, port in ports.items():
        host = hosts.get(directory, "10.3.7.21")
        write_json(results / directory / "endpoint.json", {"kind": directory, "host": host, "port": port,
                   "node": "mel2041", "pid": 1, "started_at": 1.0, "deployment": "d1", "exporters": [],
                   "extra": {}})  # fmt: skip
    return results


def test_grafana_through_the_login_host(tmp_path: Path) -> None:
    results = fake_run(tmp_path)
    tunnel = make_tunnel(results, "grafana", user="u100123")
    assert tunnel.ssh == ["ssh", "-N", "-L", "43121:10.3.7.21:43121", "-p", "8822", "u100123@login.lxp.lu"]
    assert tunnel.url == "http://localhost:43121/"
    lines = describe(tunnel)
    assert f"  {shlex.join(tunnel.ssh)}" in lines and "then open http://localhost:43121/" in lines
    assert any("GF_SECURITY_ADMIN_PASSWORD" in line and str(results.absolute() / "grafana") in line
               for line in lines)  # fmt: skip


def test_prometheus_own_login_port_and_local_port(tmp_path: Path) -> None:
    results = fake_run(tmp_path)
    tunnel = make_tunnel(results, "prometheus", login="login.example.org", ssh_port=22, user="me",
                         local_port=9090)  # fmt: skip
    assert tunnel.ssh == ["ssh", "-N", "-L", "9090:10.3.7.21:41234", "-p", "22", "me@login.example.org"]
    assert tunnel.url == "http://localhost:9090/"
    assert not any("password" in line for line in describe(tunnel))


def test_bound_to_every_address_goes_to_the_node(tmp_path: Path) -> None:
    results = fake_run(tmp_path, grafana="0.0.0.0")
    assert make_tunnel(results, "grafana", user="u").ssh[3] == "43121:mel2041:43121"


def test_loopback_gets_no_tunnel(tmp_path: Path) -> None:
    results = fake_run(tmp_path, monitoring="127.0.0.1")
    tunnel = make_tunnel(results, "prometheus")
    assert tunnel.ssh is None and tunnel.url == "http://127.0.0.1:41234/"
    assert "loopback only" in describe(tunnel)[0]


def test_not_started_or_stopped(tmp_path: Path) -> None:
    with pytest.raises(AibenchError, match="has not started"):
        make_tunnel(tmp_path / "empty", "grafana")
    results = fake_run(tmp_path)
    write_json(results / "grafana" / "stopped.json", {"stopped_at": 1700000000.0, "how": "SIGTERM"})
    with pytest.raises(AibenchError, match="was stopped at"):
        make_tunnel(results, "grafana")
    assert make_tunnel(results, "prometheus").port == 41234  # the other one still runs


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = fake_run(tmp_path)
    assert main(["tunnel", "prometheus", "--results", str(results), "--user", "u1"]) == 0
    out = capsys.readouterr().out
    assert "ssh -N -L 41234:10.3.7.21:41234 -p 8822 u1@login.lxp.lu" in out
    assert "http://localhost:41234/" in out and "runs on mel2041, 10.3.7.21:41234" in out
    assert main(["tunnel", "grafana", "--results", str(tmp_path / "none")]) == 2
    assert "has not started" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tunnel", "redis", "--results", str(results)])
