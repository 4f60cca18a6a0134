"""The grafana kind, checked as text only: Grafana cannot run on this machine (no grafana binary, and
no Apptainer or Docker Hub for its image), so these tests read the command line, environment, ini and
provisioning files the service job would hand to it; nothing here starts Grafana. The readiness probe
is exercised against a small stand-in HTTP server. The dashboards themselves are checked against a
real Prometheus in tests/integration/test_dashboards.py.
"""

from __future__ import annotations

import base64
import configparser
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from aibench.containers import apptainer_command
from aibench.errors import ConfigError
from aibench.monitoring.dashboards import DASHBOARDS_DIR
from aibench.probes import NotReady
from aibench.recipes import load_service
from aibench.services import SERVICES
from aibench.services.base import ServiceContext
from aibench.services.grafana import Grafana

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "http://10.1.2.9:41234"


@pytest.fixture
def kind() -> Grafana:
    return Grafana()


def context(tmp_path: Path, **params: object) -> ServiceContext:
    recipe = load_service(ROOT / "recipes" / "services" / "grafana.yaml").params
    secrets = SERVICES.create("grafana").make_secrets(recipe)
    return ServiceContext("monitoring", {**recipe, "prometheus_url": PROMETHEUS, **params}, secrets,
                          "10.1.2.3", 40001, tmp_path / "grafana", tmp_path / "grafana" / "data")  # fmt: skip


def read_ini(path: Path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(path.read_text())
    return ini


def test_recipe_defaults_and_secrets(kind: Grafana) -> None:
    params = load_service(ROOT / "recipes" / "services" / "grafana.yaml").params
    assert params == {"prometheus_url": "", "dashboards_dir": "", "scrape_interval_s": 1}
    one, two = kind.make_secrets(params), kind.make_secrets(params)
    assert set(one) == {"GF_SECURITY_ADMIN_PASSWORD", "GF_SECURITY_SECRET_KEY"}
    assert one["GF_SECURITY_ADMIN_PASSWORD"] != two["GF_SECURITY_ADMIN_PASSWORD"]  # per run
    assert len(one["GF_SECURITY_ADMIN_PASSWORD"]) >= 24
    assert kind.exporters(context(Path("/nonexistent")), [1, 2, 3, 4]) == []
    assert kind.resource_queries() == {}
    assert kind.binaries == ("grafana",) and kind.image.startswith("docker://grafana/grafana:1")
    assert not kind.loopback_only  # it has a password: reachable from the login host through a tunnel


def test_command_and_environment(kind: Grafana, tmp_path: Path) -> None:
    ctx = context(tmp_path)
    command = kind.command(ctx)
    ini = ctx.workdir / "grafana.ini"
    assert command.argv[:6] == ["grafana", "server", "--homepath", "/usr/share/grafana", "--config", str(ini)]
    password = ctx.secrets["GF_SECURITY_ADMIN_PASSWORD"]
    assert command.env == {"GF_SECURITY_ADMIN_PASSWORD": password,
                           "GF_SECURITY_SECRET_KEY": ctx.secrets["GF_SECURITY_SECRET_KEY"]}  # fmt: skip
    # the image's own GF_PATHS_* would beat grafana.ini: cfg: arguments name the run's directories
    paths = dict(arg.removeprefix("cfg:paths.").split("=", 1) for arg in command.argv[6:])
    assert paths["data"] == str(ctx.datadir) and paths["provisioning"] == str(ctx.workdir / "provisioning")
    assert paths["plugins"].startswith(str(ctx.datadir)) and paths["logs"].startswith(str(ctx.workdir))
    for name in ("data", "plugins", "logs"):
        assert Path(paths[name]).is_dir()
    written = [p for p in ctx.workdir.rglob("*") if p.is_file()]
    assert written and not any(password in p.read_text() for p in written)
    assert password not in " ".join(command.argv)


def test_password_only_in_the_0600_env_file_under_apptainer(kind: Grafana, tmp_path: Path) -> None:
    ctx = context(tmp_path)
    command = kind.command(ctx)
    env_file = ctx.workdir / "service.env"
    wrapped = apptainer_command(command, kind.image, {}, [ctx.workdir], env_file)
    password = ctx.secrets["GF_SECURITY_ADMIN_PASSWORD"]
    assert password not in " ".join(wrapped.argv)
    assert f"GF_SECURITY_ADMIN_PASSWORD={password}\n" in env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o600
    image_at = wrapped.argv.index(kind.image)
    assert wrapped.argv[image_at + 1 : image_at + 3] == ["/usr/share/grafana/bin/grafana", "server"]


def test_ini_locks_grafana_down(kind: Grafana, tmp_path: Path) -> None:
    ctx = context(tmp_path)
    kind.command(ctx)
    ini = read_ini(ctx.workdir / "grafana.ini")
    assert ini["server"]["http_addr"] == "10.1.2.3" and ini["server"]["http_port"] == "40001"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false" and ini["users"]["allow_org_create"] == "false"
    assert ini["security"]["admin_user"] == "admin" and "admin_password" not in ini["security"]
    for key in ("reporting_enabled", "check_for_updates", "check_for_plugin_updates"):
        assert ini["analytics"][key] == "false"
    assert ini["plugins"]["preinstall_disabled"] == "true"  # no downloads at start on a compute node
    assert ini["paths"]["data"] == str(ctx.datadir)
    assert ini["paths"]["provisioning"] == str(ctx.workdir / "provisioning")
    assert ini["paths"]["logs"].startswith(str(ctx.workdir))
    home = ini["dashboards"]["default_home_dashboard_path"]
    assert home == str(ctx.workdir / "dashboards" / "overview.json")


def test_provisioned_datasource_and_dashboards(kind: Grafana, tmp_path: Path) -> None:
    ctx = context(tmp_path, scrape_interval_s=2)
    kind.command(ctx)
    provisioning = ctx.workdir / "provisioning"
    [datasource] = yaml.safe_load((provisioning / "datasources" / "aibench.yaml").read_text())["datasources"]
    assert datasource["uid"] == "aibench-prometheus" and datasource["type"] == "prometheus"
    assert datasource["url"] == PROMETHEUS and datasource["access"] == "proxy"
    assert datasource["jsonData"]["timeInterval"] == "2s"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "aibench.yaml").read_text())["providers"]
    copied = Path(provider["options"]["path"])
    assert copied == ctx.workdir / "dashboards" and provider["type"] == "file"
    shipped = sorted(p.name for p in DASHBOARDS_DIR.glob("*.json"))
    assert sorted(p.name for p in copied.glob("*.json")) == shipped
    assert {f"{n}.json" for n in ("overview", "llm", "redis", "mysql", "chroma", "gpu")} <= set(shipped)
    for name in shipped:
        assert (copied / name).read_bytes() == (DASHBOARDS_DIR / name).read_bytes()


def test_own_dashboards_dir(kind: Grafana, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "one.json").write_text(json.dumps({"title": "one"}))
    ctx = context(tmp_path, dashboards_dir=str(mine))
    kind.command(ctx)
    assert [p.name for p in (ctx.workdir / "dashboards").glob("*.json")] == ["one.json"]
    assert "dashboards" not in read_ini(ctx.workdir / "grafana.ini")  # no overview.json: Grafana's own home
    with pytest.raises(ConfigError, match="no dashboards"):
        kind.command(context(tmp_path, dashboards_dir=str(tmp_path / "empty")))


def test_missing_prometheus_url_fails_at_start(kind: Grafana, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prometheus_url"):
        kind.command(context(tmp_path, prometheus_url=""))


class _FakeGrafana(BaseHTTPRequestHandler):
    password = ""
    datasource = True

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"admin:{self.password}".encode()).decode()
        if self.path == "/api/health":
            status = 200
        elif self.headers.get("Authorization") != expected:
            status = 401
        elif self.path == "/api/datasources/uid/aibench-prometheus" and self.datasource:
            status = 200
        else:
            status = 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_grafana() -> Iterator[tuple[ThreadingHTTPServer, type[_FakeGrafana]]]:
    handler = type("Handler", (_FakeGrafana,), {"password": "right-password"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def test_probe_needs_the_password_and_the_datasource(
    kind: Grafana, fake_grafana: tuple[ThreadingHTTPServer, type[_FakeGrafana]]
) -> None:
    server, handler = fake_grafana
    endpoint = {"host": "127.0.0.1", "port": server.server_address[1]}
    kind.probe(endpoint, {"GF_SECURITY_ADMIN_PASSWORD": "right-password"}, timeout=2)
    with pytest.raises(NotReady, match="HTTP 401"):
        kind.probe(endpoint, {"GF_SECURITY_ADMIN_PASSWORD": "wrong"}, timeout=2)
    handler.datasource = False  # healthy, but the datasource is not provisioned (yet)
    with pytest.raises(NotReady, match="HTTP 404"):
        kind.probe(endpoint, {"GF_SECURITY_ADMIN_PASSWORD": "right-password"}, timeout=2)
