"""MySQL protocol service: a private MariaDB instance locally; under Apptainer docker://mysql:8.0 (the
default) or a MariaDB image such as docker://mariadb:10.11 (which the image-facts table says holds
mariadbd; run like the local MariaDB).

Per deployment: a fresh data directory, random root and benchmark-user passwords (0600 secrets), a
database for the benchmark. The user is created over the server's Unix socket from a 0600 SQL file,
so no password ever appears on a command line. Ready = `SELECT 1` as the benchmark user over TCP.

The two initialise differently: MariaDB with mariadb-install-db (which also creates password-less
root@127.0.0.1 and other accounts, deleted by the SQL), MySQL 8 with `mysqld --initialize-insecure`
(only root@localhost, over the socket); MySQL 8 also gets X Protocol off (no second port) and the
benchmark user with mysql_native_password, which every sysbench build's client library speaks.
"""

from __future__ import annotations

from typing import Any

from aibench import images, probes
from aibench.files import write_text
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

USER = "bench"
EXPORTER_USER = "exporter"


@SERVICES.register
class MySQL(ServiceKind):
    name = "mysql"
    params_schema = "kinds/mysql"
    binaries = ("mariadbd", "mariadb-install-db", "mariadb")
    image = "docker://mysql:8.0"

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {
            "MYSQL_ROOT_PASSWORD": generate_password(),
            "MYSQL_PASSWORD": generate_password(),
            "MYSQL_EXPORTER_PASSWORD": generate_password(),
            "MYSQL_USER": USER,
            "MYSQL_DATABASE": params["database"],
        }

    @staticmethod
    def _mysql8(ctx: ServiceContext) -> bool:
        """MySQL 8 (its own initialisation and client) rather than MariaDB."""
        return ctx.containerized and not images.provides(ctx.image, "mariadbd")

    def _socket(self, ctx: ServiceContext) -> str:
        return str(ctx.workdir / "mysqld.sock")

    def prepare_commands(self, ctx: ServiceContext) -> list[Command]:
        """Before the server starts: an empty data directory (root password set by the SQL below)."""
        if self._mysql8(ctx):  # mysql:8.0, run as the calling user
            return [Command(["mysqld", "--no-defaults", "--initialize-insecure", f"--datadir={ctx.datadir}"])]
        argv = ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={ctx.datadir}"]
        return [Command([*argv, "--auth-root-authentication-method=normal", "--skip-test-db"])]

    def command(self, ctx: ServiceContext) -> Command:
        p = ctx.params
        if self._mysql8(ctx):
            argv = ["mysqld", "--no-defaults", f"--datadir={ctx.datadir}", "--mysqlx=OFF"]
            argv += [f"--secure-file-priv={ctx.workdir}"]  # the image's default directory is read-only
        else:
            argv = ["mariadbd", "--no-defaults", "--user=root", f"--datadir={ctx.datadir}"]
        argv += [f"--socket={self._socket(ctx)}", f"--pid-file={ctx.workdir / 'mysqld.pid'}"]
        argv += [f"--bind-address={ctx.host}", f"--port={ctx.port}", "--skip-name-resolve"]
        argv += [
            f"--max-connections={p['max_connections']}",
            f"--innodb-buffer-pool-size={p['innodb_buffer_pool_mb']}M",
        ]
        return Command(argv)

    def setup_commands(self, ctx: ServiceContext) -> list[Command]:
        """Once listening: the benchmark database and user, from a 0600 SQL file read over the socket."""
        s = ctx.secrets
        # mariadb-install-db also makes password-less root@127.0.0.1, root@::1, root@<host> and
        # anonymous accounts: only root over the socket and the benchmark user remain
        cleanup = "DELETE FROM mysql.global_priv WHERE NOT (User = 'root' AND Host = 'localhost');\n"
        mysql8 = self._mysql8(ctx)
        plugin = "WITH mysql_native_password " if mysql8 else ""
        sql = (
            ("" if mysql8 else cleanup) + "FLUSH PRIVILEGES;\n"
            f"CREATE DATABASE IF NOT EXISTS `{s['MYSQL_DATABASE']}`;\n"
            f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED {plugin}BY '{s['MYSQL_PASSWORD']}';\n"
            f"GRANT ALL PRIVILEGES ON `{s['MYSQL_DATABASE']}`.* TO '{USER}'@'%';\n"
            # the mysqld exporter's own account: server status only, no data
            f"CREATE USER IF NOT EXISTS '{EXPORTER_USER}'@'%' IDENTIFIED {plugin}BY "
            f"'{s['MYSQL_EXPORTER_PASSWORD']}' WITH MAX_USER_CONNECTIONS 3;\n"
            f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{EXPORTER_USER}'@'%';\n"
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{s['MYSQL_ROOT_PASSWORD']}';\n"
            "FLUSH PRIVILEGES;\n"
        )
        init = ctx.workdir / "init.sql"
        write_text(init, sql, perms=0o600)
        client = "mysql" if mysql8 else "mariadb"
        argv = [client, "--no-defaults", f"--socket={self._socket(ctx)}", "-uroot"]
        return [Command([*argv, "-e", f"source {init}"])]

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        """The process exporter and mysqld_exporter (0.14; its account's password in a 0600 my.cnf)."""
        cnf = ctx.workdir / "exporter.my.cnf"
        client = f"user={EXPORTER_USER}\npassword={ctx.secrets['MYSQL_EXPORTER_PASSWORD']}\n"
        write_text(cnf, f"[client]\n{client}host={ctx.host}\nport={ctx.port}\n", perms=0o600)
        argv = [
            "prometheus-mysqld-exporter",
            f"--config.my-cnf={cnf}",
            f"--web.listen-address={ctx.host}:{ports[1]}",
        ]
        return [self.process_exporter(ctx, ports[0]), Exporter("mysqld", Command(argv), ports[1])]

    def process_pattern(self, ctx: ServiceContext) -> str:
        return f"--port={ctx.port}"

    def process_comms(self) -> tuple[str, ...]:
        return ("mariadbd", "mysqld")

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        probes.mysql_select_1(
            endpoint["host"],
            endpoint["port"],
            USER,
            secrets["MYSQL_PASSWORD"],
            secrets["MYSQL_DATABASE"],
            timeout,
        )
