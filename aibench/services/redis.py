"""Redis: redis-server with a per-run password (requirepass, from a 0600 config file)."""

from __future__ import annotations

import re
import sys
from typing import Any

from aibench import probes
from aibench.files import write_text
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

EXPORTER_USER = "exporter"


@SERVICES.register
class Redis(ServiceKind):
    name = "redis"
    params_schema = "kinds/redis"
    binaries = ("redis-server",)
    image = "docker://redis:7-alpine"

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {"REDIS_PASSWORD": generate_password(), "REDIS_EXPORTER_PASSWORD": generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        p = ctx.params
        lines = [
            f"bind {ctx.host}",
            f"port {ctx.port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            'save ""',
            f"appendonly {'yes' if p['appendonly'] else 'no'}",
            f"dir {ctx.datadir}",
            f"io-threads {p['io_threads']}",
            f"maxclients {p['maxclients']}",
            f"maxmemory {p['maxmemory_mb']}mb",
            f"maxmemory-policy {p['maxmemory_policy']}",
            f"requirepass {ctx.secrets['REDIS_PASSWORD']}",
            # the exporter's own account: server statistics only, no key and no data command
            f"user {EXPORTER_USER} on >{ctx.secrets['REDIS_EXPORTER_PASSWORD']} resetkeys resetchannels "
            "-@all +@connection +info +config|get +slowlog|get +slowlog|len +latency|latest +dbsize",
        ]
        conf = ctx.workdir / "redis.conf"
        # the password is in this file: owner-only, like the secrets file
        write_text(conf, "\n".join(lines) + "\n", perms=0o600)
        return Command(["redis-server", str(conf)])

    def process_pattern(self, ctx: ServiceContext) -> str:
        # redis-server retitles itself "redis-server <host>:<port>"
        return re.escape(f"{ctx.host}:{ctx.port}")

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        """The process exporter, and redis_exporter on the node's loopback (as its own ACL user) behind
        aibench.metrics_relay, which serves only its /metrics: the exporter's multi-target /scrape
        endpoint would authenticate to any host a caller names (aibench.metrics_relay)."""
        backend = f"127.0.0.1:{ports[2]}"
        redis_exporter = Exporter(
            name="redis-exporter",
            port=ports[2],
            scraped=False,
            command=Command(
                [
                    "prometheus-redis-exporter",
                    f"-redis.addr=redis://{ctx.host}:{ctx.port}",
                    f"-redis.user={EXPORTER_USER}",
                    f"-web.listen-address={backend}",
                ],
                env={"REDIS_PASSWORD": ctx.secrets["REDIS_EXPORTER_PASSWORD"]},
            ),
        )
        relay = Exporter(
            name="redis",
            port=ports[1],
            needs=redis_exporter.name,
            command=Command(
                [
                    sys.executable,
                    "-m",
                    "aibench.metrics_relay",
                    "--listen",
                    f"{ctx.host}:{ports[1]}",
                    "--upstream",
                    backend,
                ]
            ),
        )
        return [self.process_exporter(ctx, ports[0]), redis_exporter, relay]

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        probes.redis_ping(endpoint["host"], endpoint["port"], secrets["REDIS_PASSWORD"], timeout)

    def resource_queries(self) -> dict[str, str]:
        return {
            **super().resource_queries(),
            "redis_ops_per_s": "sum(rate(redis_commands_processed_total{{{sel}}}[5s]))",
            "redis_connected_clients": "sum(redis_connected_clients{{{sel}}})",
            "redis_memory_used_bytes": "sum(redis_memory_used_bytes{{{sel}}})",
        }
