"""`aibench tunnel`: the ssh port forward that shows a run's Grafana or Prometheus on a laptop.

Both run as service jobs on a compute node (results/monitoring/ and results/grafana/, each with the
endpoint.json its service job wrote); compute nodes are reached through the login host, so the
forward is ``ssh -N -L <local port>:<node>:<port> -p 8822 <user>@login.lxp.lu``.
"""

from __future__ import annotations

import getpass
import ipaddress
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aibench.errors import AibenchError
from aibench.files import read_json
from aibench.services.grafana import PASSWORD as GRAFANA_PASSWORD

#: service -> its directory under the results directory
SERVICE_DIRS = {"grafana": "grafana", "prometheus": "monitoring"}
LOGIN_HOST = "login.lxp.lu"
LOGIN_PORT = 8822


@dataclass(frozen=True)
class Tunnel:
    service: str
    service_dir: Path
    host: str  # what the service listens on
    node: str
    port: int
    local_port: int
    #: the ssh command line; None when the service listens on its node's loopback only
    ssh: list[str] | None

    @property
    def url(self) -> str:
        if self.ssh is None:
            return f"http://{self.host}:{self.port}/"
        return f"http://localhost:{self.local_port}/"


def service_dir(results: str | Path, service: str) -> Path:
    if service not in SERVICE_DIRS:
        raise AibenchError(f"no tunnel to {service!r}: only {', '.join(sorted(SERVICE_DIRS))}")
    return Path(results) / SERVICE_DIRS[service]


def read_endpoint(directory: Path, service: str) -> dict[str, Any]:
    """The endpoint of a running deployment; an error when it never started or was stopped."""
    endpoint_file = directory / "endpoint.json"
    if not endpoint_file.exists():
        raise AibenchError(f"{endpoint_file} does not exist: {service} of this run has not started (yet)")
    stopped_file = directory / "stopped.json"
    if stopped_file.exists():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(read_json(stopped_file)["stopped_at"]))
        raise AibenchError(f"{service} of this run was stopped at {when} ({stopped_file})")
    return read_json(endpoint_file)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def forward_target(endpoint: dict[str, Any]) -> str:
    """Where the login host connects: the address the service bound, or its node when it bound all."""
    host = endpoint["host"]
    if host in ("0.0.0.0", "::", ""):
        return endpoint["node"]
    return host


def make_tunnel(
    results: str | Path,
    service: str,
    login: str = LOGIN_HOST,
    ssh_port: int = LOGIN_PORT,
    user: str | None = None,
    local_port: int | None = None,
) -> Tunnel:
    directory = service_dir(results, service)
    endpoint = read_endpoint(directory, service)
    port = int(endpoint["port"])
    local = local_port or port  # the same port keeps Grafana's own links (root_url) right
    ssh = None
    if not _loopback(endpoint["host"]):
        forward = f"{local}:{forward_target(endpoint)}:{port}"
        ssh = ["ssh", "-N", "-L", forward, "-p", str(ssh_port), f"{user or getpass.getuser()}@{login}"]
    return Tunnel(service, directory, endpoint["host"], endpoint.get("node", "?"), port, local, ssh)


def describe(tunnel: Tunnel) -> list[str]:
    """What to print: the ssh line to run on the laptop, then the URL to open."""
    where = f"{tunnel.service} runs on {tunnel.node}, {tunnel.host}:{tunnel.port}"
    if tunnel.ssh is None:
        here = tunnel.node == socket.gethostname()
        lines = [f"{where} (loopback only: no tunnel can reach it)",
                 f"open {tunnel.url}" + ("" if here else f" on {tunnel.node}")]  # fmt: skip
    else:
        lines = [where, "on your laptop run:", f"  {shlex.join(tunnel.ssh)}", f"then open {tunnel.url}"]
    if tunnel.service == "grafana":
        secrets = tunnel.service_dir.absolute() / "secrets.env"
        lines.append(f"log in as admin, password: {GRAFANA_PASSWORD} in {secrets}")
    return lines
