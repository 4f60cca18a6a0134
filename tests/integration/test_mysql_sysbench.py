"""A real private MariaDB (MySQL protocol) and real sysbench: credentials, prepare, run, parsing."""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from aibench import lifecycle
from aibench.clients.runner import prepare_against, run_point_against
from aibench.clients.sysbench import parse_report
from aibench.contracts import DeploymentSpec
from aibench.files import read_json
from aibench.recipes import load_service
from aibench.recipes.validation import validate
from aibench.results.schema import Metric
from aibench.secrets import read_secrets
from tests.conftest import ROOT

PARAMS = load_service(ROOT / "recipes" / "services" / "mysql.yaml").params


@pytest.fixture(scope="module")
def mysql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    service_dir = tmp_path_factory.mktemp("mysql") / "db" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("db", "mysql", PARAMS))
    try:
        lifecycle.wait_ready(service_dir, timeout_s=60, interval_s=0.1)
        yield service_dir
    finally:
        lifecycle.stop(service_dir)


def test_access_denied_without_the_credentials(mysql: Path) -> None:
    endpoint = read_json(mysql / "endpoint.json")
    secrets = read_secrets(mysql / "secrets.env")
    for user, password in (("bench", "wrong"), ("root", ""), ("root", "root")):
        with pytest.raises(pymysql.err.OperationalError) as info:
            pymysql.connect(host=endpoint["host"], port=endpoint["port"], user=user, password=password)
        assert info.value.args[0] == 1045  # access denied
    ok = pymysql.connect(host=endpoint["host"], port=endpoint["port"], user="bench",
                         password=secrets["MYSQL_PASSWORD"], database="sbtest")  # fmt: skip
    ok.close()
    for name in ("service.log", "spec.json", "endpoint.json"):
        assert secrets["MYSQL_PASSWORD"] not in (mysql / name).read_text()


#: server answers that refuse a login: access denied (1045), and denied for lack of a password (1698)
ACCESS_DENIED = (1045, 1698)


def test_root_needs_its_password_from_the_first_connection(tmp_path: Path) -> None:
    """From before the server starts until it is ready, root logs in without a password in a tight
    loop over the Unix socket and over TCP (as soon as each exists): every attempt the server answers
    is refused. Afterwards the benchmark user and root with its password get in; the passwords never
    were on the server's command line, and the init file holding them is 0600."""
    service_dir = tmp_path / "db" / "service"
    socket_path = service_dir / "mysqld.sock"
    done = threading.Event()
    logins: list[str] = []  # root got in without a password: the window this test is about
    refused: list[tuple[str, int]] = []

    def tcp_target() -> dict[str, Any] | None:
        try:
            endpoint = read_json(service_dir / "endpoint.json")
        except (OSError, ValueError):
            return None
        return {"host": endpoint["host"], "port": endpoint["port"]}

    def socket_target() -> dict[str, Any] | None:
        return {"unix_socket": str(socket_path)} if socket_path.exists() else None

    def poll(via: str, target: Callable[[], dict[str, Any] | None]) -> None:
        while not done.is_set():
            where = target()
            if where is None:
                time.sleep(0.001)
                continue
            try:
                connection = pymysql.connect(user="root", password="", connect_timeout=2, read_timeout=2,
                                             **where)  # fmt: skip
            except pymysql.err.OperationalError as exc:  # not listening yet, or no answer, or refused
                if exc.args[0] in ACCESS_DENIED:
                    refused.append((via, exc.args[0]))
                continue
            logins.append(via)
            connection.close()

    pollers = [threading.Thread(target=poll, args=(via, target), daemon=True)
               for via, target in (("socket", socket_target), ("tcp", tcp_target))]  # fmt: skip
    for poller in pollers:
        poller.start()
    lifecycle.deploy(service_dir, DeploymentSpec("db", "mysql", PARAMS))
    try:
        lifecycle.wait_ready(service_dir, timeout_s=60, interval_s=0.1)
        deadline = time.monotonic() + 5  # a little past ready, until both ways have met the server
        while {via for via, _ in refused} != {"socket", "tcp"} and not logins and time.monotonic() < deadline:
            time.sleep(0.01)
        done.set()
        for poller in pollers:
            poller.join(timeout=10)
        assert not logins, f"root logged in without a password over {sorted(set(logins))}"
        assert {via for via, _ in refused} == {"socket", "tcp"}  # the pollers did reach the server

        endpoint = read_json(service_dir / "endpoint.json")
        secrets = read_secrets(service_dir / "secrets.env")
        bench = pymysql.connect(host=endpoint["host"], port=endpoint["port"], user="bench",
                                password=secrets["MYSQL_PASSWORD"], database="sbtest")  # fmt: skip
        bench.close()
        root_password = secrets["MYSQL_ROOT_PASSWORD"]
        root = pymysql.connect(unix_socket=str(socket_path), user="root", password=root_password)
        with root.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone() == ("root@localhost",)
            cursor.execute("SELECT User, Host FROM mysql.global_priv WHERE User = 'root'")
            assert cursor.fetchall() == (("root", "localhost"),)  # no root account over TCP
        root.close()
        with pytest.raises(pymysql.err.OperationalError) as info:  # root is for the socket only
            pymysql.connect(host=endpoint["host"], port=endpoint["port"], user="root", password=root_password)
        assert info.value.args[0] in ACCESS_DENIED

        init_file = service_dir / "init.sql"
        assert init_file.stat().st_mode & 0o777 == 0o600
        assert init_file.read_text().startswith("ALTER USER 'root'@'localhost'")  # root's password first
        cmdline = Path(f"/proc/{endpoint['pid']}/cmdline").read_bytes().decode()
        assert f"--init-file={init_file}" in cmdline
        passwords = [secrets[k] for k in ("MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MYSQL_EXPORTER_PASSWORD")]
        assert not any(password in cmdline for password in passwords)
        assert not any(password in (service_dir / "service.log").read_text() for password in passwords)
    finally:
        done.set()
        lifecycle.stop(service_dir)


def test_prepare_then_run_closed_and_open_loop(
    mysql: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = validate({"test": "oltp_read_write", "tables": 2, "table_size": 500, "threads": 2, "time_s": 2},
                    "kinds/sysbench", "t")  # fmt: skip
    assert prepare_against(mysql, "sysbench", base, 120)["prepared"] is True
    with caplog.at_level(logging.INFO, logger="aibench.client"):
        closed = run_point_against(mysql, tmp_path / "closed", client_kind="sysbench", params=base,
                                   timeout_s=120, progress={"interval_s": 1, "stall_s": 60})  # fmt: skip
    # its progress, counted from sysbench's own per-second reports as they came
    lines = [r.getMessage() for r in caplog.records]
    ends = [line for line in lines if line.startswith("progress at the end: ")]
    assert len(ends) == 1 and " transactions, " in ends[0], ends
    # while it ran, not only at its end: a line before the end counted some already
    during = [line for line in lines if line.startswith("progress: ") and " transactions, " in line]
    assert any(int(line.removeprefix("progress: ").split()[0]) > 0 for line in during), lines
    counted = int(ends[0].removeprefix("progress at the end: ").split()[0])
    by = {(m["name"], m["stat"], m["labels"].get("kind")): m["value"] for m in closed["metrics"]}
    assert by[("transactions_per_s", "mean", None)] > 10
    assert by[("queries_per_s", "mean", None)] > by[("transactions_per_s", "mean", None)]
    assert by[("queries", "count", "read")] > 0 and by[("queries", "count", "write")] > 0
    assert 0 < by[("latency", "mean", None)] <= by[("latency", "p95", None)] <= by[("latency", "max", None)]
    # oltp_read_write may hit the odd deadlock, which sysbench counts as an ignored error and retries
    assert by[("errors", "count", None)] <= 0.01 * by[("transactions", "count", None)]
    assert by[("reconnects", "count", None)] == 0
    assert abs(counted - by[("transactions", "count", None)]) <= 0.2 * by[("transactions", "count", None)]
    report = closed["client"]["tool"]["report"]  # sysbench's own report, kept with the summary
    assert "SQL statistics" in report and parse_report(report) == [Metric(**m) for m in closed["metrics"]]
    raw = gzip.decompress((tmp_path / "closed" / "raw.csv.gz").read_bytes()).decode().splitlines()
    assert raw[0].startswith("time_s,threads,tps,qps") and len(raw) >= 2  # one row per second of load
    assert float(raw[1].split(",")[2]) > 0
    opened = run_point_against(mysql, tmp_path / "open", client_kind="sysbench",
                               params={**base, "rate": 40}, timeout_s=120)  # fmt: skip
    tps = next(m["value"] for m in opened["metrics"] if m["name"] == "transactions_per_s")
    assert 20 <= tps <= 60  # the offered rate, not the server's capacity
    assert read_secrets(mysql / "secrets.env")["MYSQL_PASSWORD"] not in report
