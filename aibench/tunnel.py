"""`aibench tunnel`: the ssh port forward that shows a run's Grafana or Prometheus on a laptop.

Both run as service jobs on a compute node (the run's monitoring and grafana directories, each with
the endpoint its service job wrote); compute nodes are reached through the login host, so the
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

from aibench.contracts import Endpoint
from aibench.errors import AibenchError
from aibench.files import read_json
from aibench.rundir import RunDir, ServiceDir
from aibench.services.grafana import PASSWORD as GRAFANA_PASSWORD

#: the services a tunnel reaches: the run's Grafana and Prometheus
SERVICES = ("grafana", "prometheus")
LOGIN_HOST = "login.lxp.lu"
LOGIN_PORT = 8822


@dataclass(frozen=True)
class Tunnel:
    service: str
    service_dir: ServiceDir
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


def service_dir(results: str | Path, service: str) -> ServiceDir:
    if service not in SERVICES:
        raise AibenchError(f"no tunnel to {service!r}: only {', '.join(sorted(SERVICES))}")
    run = RunDir(results)
    return run.grafana if service == "grafana" else run.monitoring


def read_endpoint(directory: ServiceDir, service: str) -> Endpoint:
    """The endpoint of a running deployment; an error when it never started or was stopped."""
    if not directory.endpoint.exists():
        raise AibenchError(
            f"{directory.endpoint} does not exist: {service} of this run has not started (yet)"
        )
    if directory.stopped.exists():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(read_json(directory.stopped)["stopped_at"]))
        raise AibenchError(f"{service} of this run was stopped at {when} ({directory.stopped})")
    return Endpoint.read_recorded(directory.endpoint)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def forward_target(endpoint: Endpoint) -> str:
    """Where the login host connects: the address the service bound, or its node when it bound all."""
    if endpoint.host in ("0.0.0.0", "::", ""):
        return endpoint.node
    return endpoint.host


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
    port = int(endpoint.port)
    local = local_port or port  # the same port keeps Grafana's own links (root_url) right
    ssh = None
    if not _loopback(endpoint.host):
        forward = f"{local}:{forward_target(endpoint)}:{port}"
        ssh = ["ssh", "-N", "-L", forward, "-p", str(ssh_port), f"{user or getpass.getuser()}@{login}"]
    return Tunnel(service, directory, endpoint.host, endpoint.node, port, local, ssh)


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
        secrets = tunnel.service_dir.secrets.absolute()
        lines.append(f"log in as admin, password: {GRAFANA_PASSWORD} in {secrets}")
    return lines
