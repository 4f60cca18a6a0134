"""Redis: redis-server with per-run passwords (requirepass and ACL users, from a 0600 config file)."""

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
#: redis-benchmark's account. redis-benchmark 7.0 takes its password only as ``-a`` (or inside a ``-u``
#: URI) on its command line, where any local user reads it in ps: redis/redis 7.0.15
#: src/redis-benchmark.c parseOptions() reads "-a", "--user" and "-u", and the file calls no getenv()
#: (no REDISCLI_AUTH, which only redis-cli.c reads). So the load logs in as this user, not `default`,
#: with a password of its own that can only run the benchmark's commands on the benchmark's keys.
BENCH_USER = "benchmark"
#: every command of redis-benchmark's default suite (main() in src/redis-benchmark.c, 7.0.15: PING,
#: SET, GET, INCR, LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE, MSET), so any
#: ``tests`` the client's schema allows can run; AUTH needs no grant (it is flagged NO_AUTH, which
#: ACLSelectorCheckCmd() in src/acl.c exempts). Its startup `CONFIG GET save/appendonly` is left
#: denied on purpose: CONFIG GET would also read `requirepass`; getRedisConfig() in
#: src/redis-benchmark.c then only warns "Could not fetch server CONFIG" and carries on.
#: INFO besides, for the load's progress: the client reads the server's total_commands_processed while
#: redis-benchmark runs (aibench.clients.redis_benchmark.CommandCounter; INFO shows no password)
BENCH_COMMANDS = ("ping", "set", "get", "incr", "lpush", "rpush", "lpop", "rpop", "sadd", "hset", "spop",
                  "zadd", "zpopmin", "lrange", "mset", "info")  # fmt: skip
#: the keys those commands name (same source): key:__rand_int__ (SET/GET/MSET), counter:__rand_int__
#: (INCR), and mylist, myset, myhash, myzset; __rand_int__ becomes a number with -r, stays literal without
BENCH_KEYS = ("key:*", "counter:*", "mylist", "myset", "myhash", "myzset")


def bench_user_line(password: str) -> str:
    """The redis.conf `user` directive of redis-benchmark's account: its commands on its keys only."""
    commands = " ".join(f"+{c}" for c in BENCH_COMMANDS)
    keys = " ".join(f"~{k}" for k in BENCH_KEYS)
    return f"user {BENCH_USER} on >{password} resetkeys resetchannels -@all {commands} {keys}"


@SERVICES.register
class Redis(ServiceKind):
    name = "redis"
    params_schema = "kinds/redis"
    binaries = ("redis-server",)
    image = "docker://redis:7-alpine"
    #: the process exporter, the redis exporter's relay, the redis exporter itself (loopback)
    exporter_ports = 3

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {
            "REDIS_PASSWORD": generate_password(),
            "REDIS_EXPORTER_PASSWORD": generate_password(),
            "REDIS_BENCH_PASSWORD": generate_password(),
        }

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
            # the exporter's own account: server statistics only, no key and no data command. Not CONFIG
            # GET: it returns requirepass in clear (src/config.c), and Redis 7.0 cannot allow it for some
            # parameters only; redis_exporter v1.45.0 logs the refusal and goes on (exporter/exporter.go:
            # `CONFIG GET *` failing leaves dbCount 0, then 16 databases are assumed), losing only the
            # redis_config_* series, which nothing here uses
            f"user {EXPORTER_USER} on >{ctx.secrets['REDIS_EXPORTER_PASSWORD']} resetkeys resetchannels "
            "-@all +@connection +info +slowlog|get +slowlog|len +latency|latest +dbsize",
            bench_user_line(ctx.secrets["REDIS_BENCH_PASSWORD"]),
        ]
        conf = ctx.workdir / "redis.conf"
        # the password is in this file: owner-only, like the secrets file
        write_text(conf, "\n".join(lines) + "\n", perms=0o600)
        return Command(["redis-server", str(conf)])

    def process_pattern(self, ctx: ServiceContext) -> str:
        """redis-server's command line at exec (its config file), or after it retitled itself
        ("redis-server <host>:<port>"): the process exporter classifies a process once, when it first
        sees it, so a server seen before its retitle must match too (on a loaded node it was not)."""
        return f"(?:{re.escape(str(ctx.workdir / 'redis.conf'))}|{re.escape(f'{ctx.host}:{ctx.port}')})"

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
