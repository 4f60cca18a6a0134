"""A real private MariaDB (MySQL protocol) and real sysbench: credentials, prepare, run, parsing."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from aibench import lifecycle
from aibench.clients.runner import prepare_against, run_point_against
from aibench.clients.sysbench import parse_report
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
    lifecycle.deploy(service_dir, experiment="db", kind="mysql", params=PARAMS)
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


def test_prepare_then_run_closed_and_open_loop(mysql: Path, tmp_path: Path) -> None:
    base = validate({"test": "oltp_read_write", "tables": 2, "table_size": 500, "threads": 2, "time_s": 2},
                    "kinds/sysbench", "t")  # fmt: skip
    assert prepare_against(mysql, "sysbench", base, 120)["prepared"] is True
    closed = run_point_against(mysql, tmp_path / "closed", client_kind="sysbench", params=base, timeout_s=120)
    by = {(m["name"], m["stat"], m["labels"].get("kind")): m["value"] for m in closed["metrics"]}
    assert by[("transactions_per_s", "mean", None)] > 10
    assert by[("queries_per_s", "mean", None)] > by[("transactions_per_s", "mean", None)]
    assert by[("queries", "count", "read")] > 0 and by[("queries", "count", "write")] > 0
    assert 0 < by[("latency", "mean", None)] <= by[("latency", "p95", None)] <= by[("latency", "max", None)]
    # oltp_read_write may hit the odd deadlock, which sysbench counts as an ignored error and retries
    assert by[("errors", "count", None)] <= 0.01 * by[("transactions", "count", None)]
    assert by[("reconnects", "count", None)] == 0
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


def test_parse_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="not a sysbench run report"):
        parse_report("FATAL: unable to connect to MySQL server")
