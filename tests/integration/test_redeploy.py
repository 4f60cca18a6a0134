"""Deploying a service again into a service directory that holds an earlier deployment (a rerun after a
failure, `--forcerun deploy_service`, a SLURM run into a directory a local run used): every kind starts
from fresh state, and the earlier state is set aside in replaced/, not deleted, until the run ends."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
import redis

from aibench import lifecycle
from aibench.contracts import DeploymentSpec
from aibench.paths import PROJECT_ROOT
from aibench.recipes import load_service
from aibench.rundir import ServiceDir, discard_retired_state
from aibench.services import SERVICES

#: the kinds whose servers run on this machine (grafana, ollama and vllm need their own binaries or a
#: GPU: tests/unit/test_redeploy_state.py covers their service directories without a server)
RUNNABLE = ["redis", "mysql", "chroma", "llamacpp", "prometheus"]


def params_of(kind: str, tmp_path: Path) -> dict:
    if kind == "prometheus":
        (tmp_path / "targets").mkdir(exist_ok=True)
        return {"scrape_interval_s": 1, "targets_dir": str(tmp_path / "targets")}
    return load_service(PROJECT_ROOT / "recipes" / "services" / f"{kind}.yaml").params


def deploy_ready(service_dir: Path, kind: str, params: dict) -> dict:
    lifecycle.deploy(service_dir, DeploymentSpec("again", kind, params))
    return lifecycle.wait_ready(service_dir, timeout_s=120, interval_s=0.2)


def connect_mysql(ready: dict, secrets: dict[str, str]) -> pymysql.Connection:
    return pymysql.connect(
        host=ready["host"],
        port=ready["port"],
        user=secrets["MYSQL_USER"],
        password=secrets["MYSQL_PASSWORD"],
        database=secrets["MYSQL_DATABASE"],
    )


def leave_state(kind: str, ready: dict, secrets: dict[str, str]) -> None:
    """Something the first deployment stores, that a fresh one must not have."""
    if kind == "redis":
        client = redis.Redis(ready["host"], ready["port"], password=secrets["REDIS_PASSWORD"])
        client.set("from-the-first-deployment", "1")
        client.save()  # into data/dump.rdb, which a restart on the same directory would load
    elif kind == "mysql":
        with connect_mysql(ready, secrets) as db:
            db.cursor().execute("CREATE TABLE first_deployment (id INT)")


def state_is_fresh(kind: str, ready: dict, secrets: dict[str, str]) -> None:
    if kind == "redis":
        client = redis.Redis(ready["host"], ready["port"], password=secrets["REDIS_PASSWORD"])
        assert client.get("from-the-first-deployment") is None
    elif kind == "mysql":
        with connect_mysql(ready, secrets) as db:
            cursor = db.cursor()
            cursor.execute("SHOW TABLES")
            assert cursor.fetchall() == ()


@pytest.mark.parametrize("kind", RUNNABLE)
def test_redeploy_into_the_same_directory_starts_fresh(
    tmp_path: Path, kind: str, no_leftovers: float
) -> None:
    service_dir = tmp_path / "again" / "service"
    params = params_of(kind, tmp_path)
    try:
        ready = deploy_ready(service_dir, kind, params)
        first = lifecycle.service_secrets(service_dir)
        leave_state(kind, ready, first)
        lifecycle.stop(service_dir)
        (service_dir / "data" / "marker-of-the-first-deployment").write_text("1\n")

        ready = deploy_ready(service_dir, kind, params)  # MariaDB: 'Access denied' on a kept data dir
        second = lifecycle.service_secrets(service_dir)
        assert second != first or not first  # new credentials for the new deployment
        state_is_fresh(kind, ready, second)
        assert not (service_dir / "data" / "marker-of-the-first-deployment").exists()
        [kept] = (service_dir / "replaced").iterdir()  # set aside, not deleted
        assert (kept / "data" / "marker-of-the-first-deployment").is_file()
    finally:
        lifecycle.stop_all([service_dir])
    assert discard_retired_state([ServiceDir(service_dir)]) == [service_dir / "replaced"]
    assert not (service_dir / "replaced").exists() and (service_dir / "data").is_dir()


def test_every_kind_is_covered() -> None:
    from tests.unit.test_redeploy_state import WITHOUT_SERVER

    assert sorted(RUNNABLE + WITHOUT_SERVER) == sorted(SERVICES.names())
