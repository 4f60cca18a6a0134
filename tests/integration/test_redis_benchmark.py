"""redis-benchmark against a real redis-server: its real CSV output parsed into the common schema."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aibench.clients.redis_benchmark import RedisBenchmark, command_line, parse_csv
from aibench.errors import ClientError

PARAMS = {
    "tests": "get,set",
    "clients": 4,
    "pipeline": 1,
    "data_size": 3,
    "requests": 2000,
    "keyspace": 100,
    "threads": 0,
}


def test_parse_real_csv_output(redis_server: dict) -> None:
    argv = command_line(redis_server["host"], redis_server["port"], redis_server["password"], PARAMS)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    metrics = parse_csv(out)
    by = {(m.labels["command"], m.name, m.stat): m for m in metrics}
    assert {c for c, _, _ in by} == {"GET", "SET"}
    for command in ("GET", "SET"):
        assert by[(command, "throughput", "mean")].value > 100  # ops/s: real, far from zero
        assert by[(command, "throughput", "mean")].unit == "ops/s"
        lat = {s: by[(command, "latency", s)].value for s in ("min", "median", "p95", "p99", "max", "mean")}
        assert 0 <= lat["min"] <= lat["median"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 1000
        assert by[(command, "latency", "p99")].formula == "redis-benchmark.latency"


def test_wrong_password_is_a_client_error_without_the_password(redis_server: dict) -> None:
    endpoint = {"host": redis_server["host"], "port": redis_server["port"]}
    with pytest.raises(ClientError) as info:
        RedisBenchmark().run(endpoint, {"REDIS_PASSWORD": "wrong-password-xyz"}, PARAMS, 30)
    assert "wrong-password-xyz" not in str(info.value)
    assert "********" in str(info.value)


def test_run_client_cli_writes_raw_and_summary(redis_server: dict, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"REDIS_PASSWORD={redis_server['password']}\n")
    secrets.chmod(0o600)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aibench.cli",
            "run-client",
            "redis-benchmark",
            "--endpoint",
            f"{redis_server['host']}:{redis_server['port']}",
            "--out",
            str(out),
            "--secrets-file",
            str(secrets),
            "--set",
            "clients=2",
            "--set",
            "requests=1000",
            "--set",
            "tests=get",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["params"]["clients"] == 2 and summary["params"]["pipeline"] == 1  # default filled in
    assert summary["window"]["end"] > summary["window"]["start"]
    assert redis_server["password"] not in (out / "summary.json").read_text()
    raw = gzip.decompress((out / "raw.csv.gz").read_bytes()).decode()
    assert raw.startswith('"test","rps"')
    assert parse_csv(raw)[0].labels == {"command": "GET"}


def test_run_client_cli_rejects_bad_parameter(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aibench.cli",
            "run-client",
            "redis-benchmark",
            "--endpoint",
            "127.0.0.1:1",
            "--out",
            str(tmp_path),
            "--set",
            "clients=-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "field 'clients'" in done.stderr and "minimum of 1" in done.stderr
