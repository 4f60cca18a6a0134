"""What every service kind provides: command, credentials, exporters, readiness probe, queries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from aibench.files import write_text


@dataclass(frozen=True)
class ServiceContext:
    """Where and how one deployment of a service runs (built by the service job at start)."""

    experiment: str
    params: dict[str, Any]
    secrets: dict[str, str]
    host: str  # address the service binds to
    port: int
    workdir: Path  # results/<experiment>/service
    datadir: Path  # per-run data directory (scratch)
    #: a gated kind's server listens on 127.0.0.1:backend_port, its token gateway on host:port
    backend_port: int | None = None
    #: the service runs inside its image (service_runtime apptainer)
    containerized: bool = False
    #: that image's reference (aibench.images has its facts), when containerized
    image: str | None = None


@dataclass(frozen=True)
class Command:
    """A process to start: argv (never through a shell) and extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Exporter:
    """A Prometheus exporter started beside the service, scraped at ``host:port``."""

    name: str
    #: None: the service itself serves these metrics on ``port`` (a target, nothing to start)
    command: Command | None
    port: int
    #: registered as a Prometheus target; False for an exporter only its relay reaches (loopback)
    scraped: bool = True
    #: the exporter this one relays (started only if that one started)
    needs: str | None = None


#: node-level series from the sidecars (aibench.monitoring.sidecars): every kind gets them. Every
#: service job runs its own node exporter, so replicas sharing a node export it twice: each node's
#: series is counted once (``max by (node, ...)``, the targets' node label) before the sum over nodes
NODE_QUERIES = {
    "node_cpu_busy_cores": (
        'sum(max by (node, cpu, mode) (rate(node_cpu_seconds_total{{{sel},mode!~"idle|iowait"}}[5s])))'
    ),
    "node_memory_used_bytes": (
        "sum(max by (node) (node_memory_MemTotal_bytes{{{sel}}} - node_memory_MemAvailable_bytes{{{sel}}}))"
    ),
    "net_rx_bytes_per_s": (
        'sum(max by (node, device) (rate(node_network_receive_bytes_total{{{sel},device!="lo"}}[5s])))'
    ),
    "net_tx_bytes_per_s": (
        'sum(max by (node, device) (rate(node_network_transmit_bytes_total{{{sel},device!="lo"}}[5s])))'
    ),
    "gpu_utilization_pct": "avg(DCGM_FI_DEV_GPU_UTIL{{{sel}}})",
    "gpu_memory_used_bytes": "sum(DCGM_FI_DEV_FB_USED{{{sel}}}) * 1048576",
    "gpu_power_w": "sum(DCGM_FI_DEV_POWER_USAGE{{{sel}}})",
    "gpu_count": "count(DCGM_FI_DEV_GPU_UTIL{{{sel}}})",
}


class ServiceKind:
    """Base of a service kind; subclasses register with ``SERVICES.register``."""

    name: ClassVar[str]
    #: schema name of the kind's params, under config/schemas/
    params_schema: ClassVar[str]
    #: binaries the kind needs on the node (checked before start, named in the error)
    binaries: ClassVar[tuple[str, ...]] = ()
    #: container image for service_runtime apptainer (a recipe's `image` overrides it)
    image: ClassVar[str] = ""

    #: a kind without authentication binds only its node's loopback, whatever the run's bind setting
    #: parameters holding paths with environment variables (${AIBENCH_SCRATCH}/...): each must expand
    #: when the workflow is parsed (aibench.paths.env_problem), not stay a literal directory name
    path_params: ClassVar[tuple[str, ...]] = ()
    loopback_only: ClassVar[bool] = False
    #: a server whose answers do not depend on earlier requests (no data of its own): several
    #: deployments of one configuration may serve one load (an experiment's ``replicas``)
    stateless: ClassVar[bool] = False
    #: a kind whose server has no authentication of its own binds 127.0.0.1:ctx.backend_port and is
    #: reached through aibench.token_gateway, which holds the secret named by ``gateway_secret``
    gateway_secret: ClassVar[str | None] = None
    #: how many ports ``exporters`` is given (the service job's port plan, aibench.serve.plan_ports)
    exporter_ports: ClassVar[int] = 1

    def params_problem(self, params: dict[str, Any]) -> tuple[str, str] | None:
        """(the parameter, why) when the kind's parameters are valid one by one but wrong together (the
        schema cannot compare two values); else None. Checked when the workflow is parsed."""
        return None

    def resources_problem(self, params: dict[str, Any], resources: dict[str, Any]) -> tuple[str, str] | None:
        """(the parameter or resource, why) when the parameters need resources the job does not ask
        for (e.g. more GPUs); else None. Checked when the workflow is parsed, for every deployment."""
        return None

    def prepare_commands(self, ctx: ServiceContext) -> list[Command]:
        """Commands run before the service starts (e.g. initialising a data directory)."""
        return []

    def setup_commands(self, ctx: ServiceContext) -> list[Command]:
        """Commands run once the service listens, before it counts as started (e.g. a model pull)."""
        return []

    def endpoint_extra(self, ctx: ServiceContext) -> dict[str, Any]:
        """What clients and the readiness probe need besides host and port (e.g. the model name)."""
        return {}

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        """Credentials generated per run (written to a 0600 file by deploy_service)."""
        return {}

    def command(self, ctx: ServiceContext) -> Command:
        raise NotImplementedError

    def container_binds(self, ctx: ServiceContext) -> list[Path]:
        """Host files and directories the service is told to use outside its service directory (a
        model file's directory, a CA bundle): bound into its container as they are, since an image
        sees nothing of the host unless bound (a missing one fails the bind, naming it)."""
        return []

    def cache_dirs(self, ctx: ServiceContext) -> list[Path]:
        """Directories the service fills (model caches): created when missing, and bound too."""
        return []

    def process_pattern(self, ctx: ServiceContext) -> str:
        """A regular expression matching the service's command line (for the process exporter)."""
        return re.escape(str(ctx.workdir))

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        """Exporters to run beside the service; ``ports`` are ``exporter_ports`` free ports, in order."""
        return [self.process_exporter(ctx, ports[0])]

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Raise probes.NotReady unless the service answers a real request."""
        raise NotImplementedError

    def provenance(self, params: dict[str, Any]) -> dict[str, Any]:
        """What the run's manifest records of this deployment besides its spec (e.g. a model's digest)."""
        return {k: params[k] for k in ("model", "model_alias") if k in params}

    def resource_queries(self) -> dict[str, str]:
        """PromQL per resource series, with ``{sel}`` standing for the label selector of this run."""
        return {
            "cpu_cores": "sum(rate(namedprocess_namegroup_cpu_seconds_total{{{sel}}}[5s]))",
            "rss_bytes": 'sum(namedprocess_namegroup_memory_bytes{{{sel},memtype="resident"}})',
            **NODE_QUERIES,
        }

    def server_queries(self) -> dict[str, str]:
        """PromQL of the server's own metrics (its /metrics), per canonical raw series of
        aibench.monitoring.server_metrics, with ``{sel}`` as in ``resource_queries``; none by default."""
        return {}

    def process_exporter(self, ctx: ServiceContext, port: int) -> Exporter:
        config = {
            "process_names": [
                {
                    "name": self.name,
                    "comm": list(self.process_comms()),
                    "cmdline": [self.process_pattern(ctx)],
                }
            ]
        }
        path = ctx.workdir / "process-exporter.yml"
        write_text(path, yaml.safe_dump(config))
        return Exporter(
            name="process",
            port=port,
            command=Command(
                [
                    "prometheus-process-exporter",
                    f"-config.path={path}",
                    f"-web.listen-address={ctx.host}:{port}",
                    "-threads=false",
                    "-gather-smaps=false",
                ]
            ),
        )

    def process_comms(self) -> tuple[str, ...]:
        return self.binaries[:1]
