"""Prometheus, run by the workflow itself: scrapes every exporter registered through file_sd."""

from __future__ import annotations

from typing import Any

import yaml

from aibench import probes
from aibench.errors import ServiceError
from aibench.files import write_text
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

#: how long a run's TSDB keeps its samples (the schema's default, for callers that pass raw params)
RETENTION = "30d"


@SERVICES.register
class Prometheus(ServiceKind):
    name = "prometheus"
    params_schema = "kinds/prometheus"
    binaries = ("prometheus",)
    image = "docker://prom/prometheus:v2.53.5"
    exporter_ports = 0  # the monitor itself

    def command(self, ctx: ServiceContext) -> Command:
        if not ctx.params["targets_dir"]:  # the recipe leaves it to the workflow, which always sets it
            raise ServiceError("prometheus: params.targets_dir is not set (the run's file_sd directory)")
        interval = f"{ctx.params['scrape_interval_s']:g}s"
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                {
                    "job_name": "aibench",
                    "file_sd_configs": [
                        {"files": [f"{ctx.params['targets_dir']}/*.json"], "refresh_interval": "2s"}
                    ],
                }
            ],
        }
        path = ctx.workdir / "prometheus.yml"
        write_text(path, yaml.safe_dump(config, sort_keys=False))
        return Command(
            [
                "prometheus",
                f"--config.file={path}",
                f"--storage.tsdb.path={ctx.params.get('tsdb_path') or ctx.datadir}",
                f"--web.listen-address={ctx.host}:{ctx.port}",
                f"--storage.tsdb.retention.time={ctx.params.get('retention_time', RETENTION)}",
                "--log.level=warn",
            ]
        )

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        return []

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        probes.http(f"http://{endpoint['host']}:{endpoint['port']}/-/ready", timeout=timeout)

    def resource_queries(self) -> dict[str, str]:
        return {}
