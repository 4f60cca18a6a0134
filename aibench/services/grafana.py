"""Grafana (docker://grafana/grafana under Apptainer) showing the run's Prometheus.

Per deployment: a random admin password and secret key (0600 secrets, passed through the environment,
which the Apptainer path writes to a 0600 env file: never on a command line), anonymous access,
sign-up, analytics, update checks and plugin downloads off, data and plugins in the deployment's data
directory, logs and provisioning in its work directory. The kind provisions one datasource (the run's
Prometheus, uid ``aibench-prometheus``) and the dashboards of monitoring/grafana/dashboards, copied
into the work directory (bound into the container; a snapshot of what the run showed).
Ready = /api/health answers and the admin password reads the provisioned datasource.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import yaml

from aibench import probes
from aibench.errors import ConfigError
from aibench.files import write_text
from aibench.monitoring.dashboards import DASHBOARDS_DIR, DATASOURCE_UID
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

PASSWORD = "GF_SECURITY_ADMIN_PASSWORD"
SECRET_KEY = "GF_SECURITY_SECRET_KEY"
ADMIN = "admin"
#: Grafana's home (static files, defaults.ini) in the grafana/grafana image and the Debian package
HOMEPATH = "/usr/share/grafana"


def _paths(ctx: ServiceContext) -> dict[str, Path]:
    return {
        "data": ctx.datadir,
        "plugins": ctx.datadir / "plugins",
        "logs": ctx.workdir / "grafana-logs",
        "provisioning": ctx.workdir / "provisioning",
    }


def ini_text(ctx: ServiceContext) -> str:
    """grafana.ini: where it listens and keeps its files, and everything not needed turned off."""
    paths = _paths(ctx)
    sections: dict[str, dict[str, object]] = {
        "paths": {name: str(path) for name, path in paths.items()},
        "server": {"protocol": "http", "http_addr": ctx.host, "http_port": ctx.port, "domain": "localhost"},
        "database": {"type": "sqlite3"},
        "security": {"admin_user": ADMIN, "disable_gravatar": "true"},
        "auth.anonymous": {"enabled": "false"},
        "auth.basic": {"enabled": "true"},
        "users": {"allow_sign_up": "false", "allow_org_create": "false"},
        "analytics": {
            "reporting_enabled": "false",
            "check_for_updates": "false",
            "check_for_plugin_updates": "false",
            "feedback_links_enabled": "false",
        },
        "news": {"news_feed_enabled": "false"},
        "snapshots": {"external_enabled": "false"},
        "plugins": {"preinstall_disabled": "true", "public_key_retrieval_disabled": "true"},
        "log": {"mode": "console", "level": "info"},
    }
    home = dashboards_dir(ctx) / "overview.json"
    if home.exists():
        sections["dashboards"] = {"default_home_dashboard_path": str(home)}
    lines = []
    for section, values in sections.items():
        lines += [f"[{section}]", *(f"{key} = {value}" for key, value in values.items()), ""]
    return "\n".join(lines)


def dashboards_dir(ctx: ServiceContext) -> Path:
    """Where the provider reads dashboards: the deployment's copy."""
    return ctx.workdir / "dashboards"


def source_dashboards(params: dict[str, Any]) -> Path:
    return Path(params.get("dashboards_dir") or DASHBOARDS_DIR)


def datasource_provisioning(ctx: ServiceContext) -> dict[str, Any]:
    url = ctx.params.get("prometheus_url", "")
    if not url:
        raise ConfigError("grafana: params.prometheus_url is empty (the deploy rule sets it to the run's)")
    interval = f"{ctx.params.get('scrape_interval_s', 1):g}s"
    datasource = {
        "name": "Prometheus",
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "isDefault": True,
        "editable": False,
        "jsonData": {"timeInterval": interval, "httpMethod": "POST"},
    }
    return {"apiVersion": 1, "datasources": [datasource]}


def dashboard_provisioning(ctx: ServiceContext) -> dict[str, Any]:
    provider = {
        "name": "aibench",
        "orgId": 1,
        "folder": "AI Factory Bench",
        "type": "file",
        "disableDeletion": True,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 30,
        "options": {"path": str(dashboards_dir(ctx)), "foldersFromFilesStructure": False},
    }
    return {"apiVersion": 1, "providers": [provider]}


def copy_dashboards(source: Path, target: Path) -> list[Path]:
    files = sorted(source.glob("*.json"))
    if not files:
        raise ConfigError(f"grafana: no dashboards (*.json) in {source}")
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(f, target / f.name)) for f in files]


def write_provisioning(ctx: ServiceContext) -> None:
    """Datasource and dashboard provider files, and the dashboards themselves, under the workdir."""
    root = _paths(ctx)["provisioning"]
    write_text(root / "datasources" / "aibench.yaml", yaml.safe_dump(datasource_provisioning(ctx)))
    write_text(root / "dashboards" / "aibench.yaml", yaml.safe_dump(dashboard_provisioning(ctx)))
    for empty in ("plugins", "alerting"):  # Grafana reads these too; present and empty, it stays quiet
        (root / empty).mkdir(parents=True, exist_ok=True)
    copy_dashboards(source_dashboards(ctx.params), dashboards_dir(ctx))


def basic_auth(password: str) -> dict[str, str]:
    token = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@SERVICES.register
class Grafana(ServiceKind):
    name = "grafana"
    params_schema = "kinds/grafana"
    binaries = ("grafana",)
    image = "docker://grafana/grafana:11.6.1"
    exporter_ports = 0  # not a benchmarked service: not monitored

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {PASSWORD: generate_password(), SECRET_KEY: generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        write_provisioning(ctx)
        ini = ctx.workdir / "grafana.ini"
        write_text(ini, ini_text(ctx))
        for path in _paths(ctx).values():
            path.mkdir(parents=True, exist_ok=True)
        argv = ["grafana", "server", "--homepath", HOMEPATH, "--config", str(ini)]
        # the image sets GF_PATHS_*, which beat grafana.ini; cfg: arguments beat the environment
        argv += [f"cfg:paths.{name}={path}" for name, path in _paths(ctx).items()]
        return Command(argv, env={PASSWORD: ctx.secrets[PASSWORD], SECRET_KEY: ctx.secrets[SECRET_KEY]})

    def endpoint_extra(self, ctx: ServiceContext) -> dict[str, Any]:
        return {"user": ADMIN}

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        return []

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        base = f"http://{endpoint['host']}:{endpoint['port']}"
        headers = basic_auth(secrets[PASSWORD])
        probes.http(f"{base}/api/health", timeout=timeout, headers=headers)
        probes.http(f"{base}/api/datasources/uid/{DATASOURCE_UID}", timeout=timeout, headers=headers)

    def resource_queries(self) -> dict[str, str]:
        return {}
