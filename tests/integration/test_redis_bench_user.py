"""redis-benchmark logs in as its own ACL user (issue 13, item 8): redis-benchmark 7.0 takes a password
only on its command line (`-a`), where ps shows it, so the password it gets may run the benchmark's
commands on the benchmark's keys and nothing else; the `default` user's password stays off every argv."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from aibench.clients import progress
from aibench.clients.redis_benchmark import RedisBenchmark, credentials
from aibench.ports import free_port
from aibench.probes import poll, redis_ping
from aibench.services.base import ServiceContext
from aibench.services.redis import BENCH_USER, Redis
from tests.conftest import ROOT
from tests.integration.test_lifecycle import REDIS

SCHEMA = ROOT / "config" / "schemas" / "kinds" / "redis-benchmark.schema.yaml"


def schema_tests() -> list[str]:
    """Every test name the client's schema lets a recipe choose (its `tests` pattern)."""
    pattern = yaml.safe_load(SCHEMA.read_text())["properties"]["tests"]["pattern"]
    names = re.match(r"\^\(([^)]*)\)", pattern)
    assert names, pattern
    return names.group(1).split("|")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """redis-server started from the redis.conf the service kind writes, with fresh per-run secrets."""
    workdir = tmp_path_factory.mktemp("redis-acl")
    kind = Redis()
    secrets = kind.make_secrets(REDIS)
    ctx = ServiceContext("acl", REDIS, secrets, "127.0.0.1", free_port(), workdir, workdir)
    command = kind.command(ctx)
    proc = subprocess.Popen(command.argv, stdout=subprocess.DEVNULL, env={**os.environ, **command.env})
    try:
        poll(lambda: redis_ping(ctx.host, ctx.port, secrets["REDIS_PASSWORD"]), 20, 0.05)
        yield {"host": ctx.host, "port": ctx.port, "secrets": secrets, "conf": workdir / "redis.conf"}
    finally:
        proc.terminate()
        proc.wait(10)


def as_user(service: dict, user: str | None, password: str) -> redis.Redis:
    return redis.Redis(service["host"], service["port"], username=user, password=password, socket_timeout=10)


def test_credentials_prefer_the_benchmark_account() -> None:
    both = {"REDIS_PASSWORD": "main-secret", "REDIS_BENCH_PASSWORD": "bench-secret"}
    assert credentials(both) == (BENCH_USER, "bench-secret")
    assert credentials({"REDIS_PASSWORD": "main-secret"}) == (None, "main-secret")  # a foreign server
    assert credentials({}) == (None, None)


def test_benchmark_account_runs_every_test_the_schema_allows(service: dict) -> None:
    secrets = service["secrets"]
    assert BENCH_USER != "default" and len(secrets["REDIS_BENCH_PASSWORD"]) >= 24
    others = (secrets["REDIS_PASSWORD"], secrets["REDIS_EXPORTER_PASSWORD"])
    assert secrets["REDIS_BENCH_PASSWORD"] not in others
    assert stat.S_IMODE(service["conf"].stat().st_mode) == 0o600  # it holds the passwords
    tests = schema_tests()
    params = {"tests": ",".join(tests), "clients": 2, "pipeline": 1, "data_size": 3, "requests": 300,
              "keyspace": 50, "threads": 0}  # fmt: skip
    endpoint = {"host": service["host"], "port": service["port"]}
    # redis-benchmark exits 1 on any error reply (readHandler in src/redis-benchmark.c): a command or
    # key the account lacks would fail the run, not just skew it
    result = RedisBenchmark().run(endpoint, secrets, params, 120)
    commands = {re.split(r"[ _]", m.labels["command"])[0] for m in result.metrics}
    assert commands == {t.split("_")[0].upper() for t in tests}
    shown = result.tool["command"]
    assert f"--user {BENCH_USER} -a ********" in shown and secrets["REDIS_BENCH_PASSWORD"] not in shown
    # the load also works without -r: __rand_int__ stays literal, key:__rand_int__ is still key:*
    RedisBenchmark().run(endpoint, secrets, {**params, "tests": "set,get,incr", "keyspace": 0}, 60)


def test_benchmark_account_can_do_nothing_else(service: dict) -> None:
    secrets = service["secrets"]
    admin = as_user(service, None, secrets["REDIS_PASSWORD"])
    admin.set("private:data", "v")
    bench = as_user(service, BENCH_USER, secrets["REDIS_BENCH_PASSWORD"])
    bench.set("key:1", "x")  # its own commands on its own keys
    assert bench.get("key:1") == b"x" and bench.execute_command("INCR", "counter:1") >= 1 and bench.ping()
    denied = {
        "CONFIG GET": lambda: bench.config_get("requirepass"),
        "CONFIG SET": lambda: bench.config_set("maxmemory", "1"),
        "ACL": bench.acl_list,
        "FLUSHALL": bench.flushall,
        "KEYS": lambda: bench.keys("*"),
        "SCAN": lambda: bench.scan(0),
        "DEL": lambda: bench.delete("key:1"),
        "EVAL": lambda: bench.eval("return 1", 0),
        "GET other key": lambda: bench.get("private:data"),
        "SET other key": lambda: bench.set("private:data", "overwritten"),
        "MSET other key": lambda: bench.mset({"key:2": "a", "private:data": "b"}),
        "LPUSH other key": lambda: bench.lpush("otherlist", "a"),
        "PUBLISH": lambda: bench.publish("channel", "x"),
        "SUBSCRIBE": lambda: bench.execute_command("SUBSCRIBE", "channel"),
        "SHUTDOWN": lambda: bench.execute_command("SHUTDOWN", "NOSAVE"),
    }
    allowed = []
    for name, call in denied.items():
        try:
            call()
        except redis.exceptions.NoPermissionError:
            continue
        allowed.append(name)
    assert not allowed, f"the benchmark account may run {allowed}"
    assert admin.get("private:data") == b"v" and admin.ping()  # untouched, and the server still up


def cmdlines() -> list[bytes]:
    """Every process's /proc/<pid>/cmdline readable now (any local user reads these)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue  # gone meanwhile
    return found


def test_no_process_command_line_holds_the_main_passwords_during_a_load(service: dict) -> None:
    secrets = service["secrets"]
    hidden = [secrets["REDIS_PASSWORD"].encode(), secrets["REDIS_EXPORTER_PASSWORD"].encode()]
    params = {"tests": "get,set", "clients": 4, "pipeline": 1, "data_size": 3, "requests": 200_000,
              "keyspace": 1000, "threads": 0}  # fmt: skip
    endpoint = {"host": service["host"], "port": service["port"]}
    outcome: list[object] = []

    def load() -> None:
        try:
            outcome.append(RedisBenchmark().run(endpoint, secrets, params, 300))
        except Exception as exc:  # handed to the test thread
            outcome.append(exc)

    runner = threading.Thread(target=load)
    runner.start()
    seen_load, leaks = 0, []
    port = str(service["port"]).encode()
    while runner.is_alive():
        for line in cmdlines():
            if line.startswith(b"redis-benchmark\0") and b"\0" + port + b"\0" in line:
                seen_load += 1
                assert f"\0--user\0{BENCH_USER}\0-a\0".encode() in line  # its own account, by design
            leaks += [line for secret in hidden if secret in line]
        time.sleep(0.02)
    runner.join()
    assert outcome and not isinstance(outcome[0], Exception), outcome
    assert seen_load, "the scan never saw redis-benchmark running: the load was too short to prove anything"
    assert not leaks, "a main password is on a command line"


def test_the_loads_progress_is_the_servers_command_count(
    service: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-benchmark prints no progress with --csv: the client reads INFO stats with the benchmark
    account while it runs (INFO shows no password), and the log gets commands done of planned."""
    secrets = service["secrets"]
    bench = as_user(service, BENCH_USER, secrets["REDIS_BENCH_PASSWORD"])
    info = str(bench.info("all"))
    assert not any(secrets[name] in info for name in ("REDIS_PASSWORD", "REDIS_BENCH_PASSWORD",
                                                      "REDIS_EXPORTER_PASSWORD"))  # fmt: skip
    params = {"tests": "get,set", "clients": 10, "pipeline": 1, "data_size": 3, "requests": 150000,
              "keyspace": 1000, "threads": 0}  # fmt: skip
    endpoint = {"host": service["host"], "port": service["port"]}
    log = logging.getLogger("test.redis.progress")
    logged = caplog.at_level(logging.INFO, logger="test.redis.progress")
    with logged, progress.reporting(log, 0.5, 60, bar=False):
        RedisBenchmark().run(endpoint, secrets, params, 120)
    lines = [r.getMessage() for r in caplog.records]
    end = [line for line in lines if line.startswith("progress at the end: ")]
    assert len(end) == 1 and " of 300000 commands" in end[0], lines
    done = int(end[0].removeprefix("progress at the end: ").split()[0])
    assert 0.9 * 300000 <= done <= 1.05 * 300000, end  # the server's count, less the load's own INFO calls
