"""The MySQL kind's accounts come from the server's own --init-file (0600), executed before the server
accepts a connection: checked here as text for all three ways it runs (local MariaDB, the MariaDB image,
MySQL 8's image, which cannot run here). The local MariaDB runs for real in
tests/integration/test_mysql_sysbench.py::test_root_needs_its_password_from_the_first_connection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aibench.recipes import load_service
from aibench.services import SERVICES
from aibench.services.base import ServiceContext

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"MYSQL_ROOT_PASSWORD": "root-secret", "MYSQL_PASSWORD": "user-secret",
           "MYSQL_EXPORTER_PASSWORD": "exporter-secret",
           "MYSQL_USER": "bench", "MYSQL_DATABASE": "sbtest"}  # fmt: skip
#: how the kind runs: (containerized, image)
WAYS = {"mariadb-local": (False, None), "mariadb-image": (True, "docker://mariadb:10.11"),
        "mysql8-image": (True, "docker://mysql:8.0")}  # fmt: skip


def context(tmp_path: Path, way: str) -> ServiceContext:
    params = load_service(ROOT / "recipes" / "services" / "mysql.yaml").params
    containerized, image = WAYS[way]
    return ServiceContext("exp", params, SECRETS, "10.1.2.3", 40001, tmp_path, tmp_path / "data",
                          containerized=containerized, image=image)  # fmt: skip


@pytest.mark.parametrize("way", sorted(WAYS))
def test_the_server_sets_the_accounts_up_from_a_0600_init_file(tmp_path: Path, way: str) -> None:
    kind = SERVICES.create("mysql")
    ctx = context(tmp_path, way)
    init_file = tmp_path / "init.sql"
    prepare = kind.prepare_commands(ctx)
    assert init_file.stat().st_mode & 0o777 == 0o600  # written before the server is started
    command = kind.command(ctx)
    assert f"--init-file={init_file}" in command.argv
    assert kind.setup_commands(ctx) == []  # nothing logs in as root once it listens
    lines = init_file.read_text().splitlines()
    assert lines[0].startswith("ALTER USER 'root'@'localhost' IDENTIFIED ")  # root's password first
    assert "root-secret" in lines[0]
    assert all(line.endswith(";") and "--" not in line and "#" not in line for line in lines)  # one a line
    assert "GRANT ALL PRIVILEGES ON `sbtest`.* TO 'bench'@'%';" in lines
    assert "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'exporter'@'%';" in lines
    for run in (*prepare, command):  # no password on any command line
        assert not any("secret" in part for part in run.argv) and not run.env


def test_mariadb_root_loses_unix_socket_and_the_tcp_root_accounts(tmp_path: Path) -> None:
    kind = SERVICES.create("mysql")
    for way in ("mariadb-local", "mariadb-image"):
        ctx = context(tmp_path, way)
        [install] = kind.prepare_commands(ctx)
        assert install.argv[0] == "mariadb-install-db"
        # socket: root@localhost is "invalid password OR unix_socket", and no root@127.0.0.1 is made
        assert "--auth-root-authentication-method=socket" in install.argv
        assert not any(arg.endswith("=normal") for arg in install.argv)
        assert kind.command(ctx).argv[0] == "mariadbd"
        sql = (tmp_path / "init.sql").read_text()
        first, *rest = sql.splitlines()
        assert first == ("ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password "
                         "USING PASSWORD('root-secret');")  # fmt: skip
        assert rest[:2] == ["DELETE FROM mysql.global_priv WHERE NOT (User = 'root' AND Host = 'localhost');",
                            "FLUSH PRIVILEGES;"]  # fmt: skip
        assert "CREATE USER IF NOT EXISTS 'bench'@'%' IDENTIFIED BY 'user-secret';" in rest


def test_mysql8_initialises_with_no_server_then_starts_with_the_init_file(tmp_path: Path) -> None:
    kind = SERVICES.create("mysql")
    ctx = context(tmp_path, "mysql8-image")
    [initialise] = kind.prepare_commands(ctx)
    # --initialize-insecure makes the data directory and exits; the init file is not given to it (with
    # --initialize it would run without grant tables, where CREATE USER and GRANT are unavailable)
    datadir = tmp_path / "data"
    assert initialise.argv == ["mysqld", "--no-defaults", "--initialize-insecure", f"--datadir={datadir}"]
    argv = kind.command(ctx).argv
    assert argv[0] == "mysqld" and "--mysqlx=OFF" in argv and "--user=root" not in argv
    sql = (tmp_path / "init.sql").read_text()
    assert sql.startswith("ALTER USER 'root'@'localhost' IDENTIFIED BY 'root-secret';\n")
    assert "mysql.global_priv" not in sql  # a MariaDB table; MySQL 8's initialise makes only root@localhost
    assert "'bench'@'%' IDENTIFIED WITH mysql_native_password BY 'user-secret'" in sql
    assert "'exporter'@'%' IDENTIFIED WITH mysql_native_password BY 'exporter-secret'" in sql


def test_each_deployment_writes_its_own_passwords(tmp_path: Path) -> None:
    kind = SERVICES.create("mysql")
    ctx = context(tmp_path, "mariadb-local")
    kind.prepare_commands(ctx)
    fresh = dataclasses.replace(ctx, secrets={**SECRETS, "MYSQL_ROOT_PASSWORD": "next-root"})
    kind.prepare_commands(fresh)
    sql = (tmp_path / "init.sql").read_text()
    assert "next-root" in sql and "root-secret" not in sql
    assert (tmp_path / "init.sql").stat().st_mode & 0o777 == 0o600
