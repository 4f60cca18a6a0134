"""MySQL protocol service: a private MariaDB instance locally; under Apptainer docker://mysql:8.0 (the
default) or a MariaDB image such as docker://mariadb:10.11 (which the image-facts table says holds
mariadbd; run like the local MariaDB).

Per deployment: a fresh data directory, random root and benchmark-user passwords (0600 secrets), a
database for the benchmark. Ready = `SELECT 1` as the benchmark user over TCP.

Root never has a usable empty password while the server takes connections. The accounts are set up by
the server itself, from a 0600 SQL file named by ``--init-file`` (only its path is on a command line):
both servers execute that file during startup, after their sockets are set up but before they accept a
single connection (sources cited at ``INIT_FILE``), so the first client ever served already meets root's
password. The file sets root's password first: an error further on leaves root protected.

The two initialise differently: MariaDB with mariadb-install-db in ``socket`` mode (root@localhost gets
an invalid password OR unix_socket, and no root@127.0.0.1/::1/<host> accounts at all), MySQL 8 with
`mysqld --initialize-insecure` (only root@localhost, empty password, and no server listening: it exits
once the data directory is made). MySQL 8 also gets X Protocol off (no second port) and the benchmark
user with mysql_native_password, which every sysbench build's client library speaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aibench import images, probes
from aibench.files import write_text
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

USER = "bench"
EXPORTER_USER = "exporter"
#: Why --init-file closes the window (read from the servers' sources, sql/mysqld.cc mysqld_main):
#: - MariaDB (MariaDB/server 27e0d9ab, 10.x): network_init() creates the listening TCP and Unix sockets,
#:   then `if (opt_init_file && *opt_init_file) read_init_file(opt_init_file)` runs the file through
#:   bootstrap() to its end or its first failing statement (sql_parse.cc: `if (bootstrap_error)
#:   break;`) before returning; only afterwards does mysqld_main set mysqld_server_started and call
#:   handle_connections_sockets(), the loop that accept()s clients. A client connecting earlier waits
#:   in the listen backlog and is served after the file has run.
#: - MySQL 8 (mysql/mysql-server 91659ce3): network_init(), then process_bootstrap(), which for
#:   --init-file without --initialize runs the file in a SYSTEM_THREAD_INIT_FILE bootstrap thread and
#:   joins it (bootstrap.cc run_bootstrap_thread; the first failing statement aborts "the --init-file
#:   script execution"), and only then mysqld_socket_acceptor->connection_event_loop(). With
#:   --initialize, network_init() returns at once (`if (opt_initialize) return false;`): the
#:   --initialize-insecure step opens no socket at all.
#: Neither aborts startup when a statement of the file fails (MariaDB's read_init_file returns FALSE once
#: the file is open; MySQL's process_bootstrap aborts "during system initialization, but not init-file
#: execution"): hence root's password comes first, and a failure shows as the benchmark user's probe
#: never succeeding.
#: Why not at initialisation instead: mariadb-install-db --extra-file (MDEV-27435) feeds the file to
#: `mariadbd --bootstrap`, which runs without grant tables and refuses CREATE/ALTER USER (ERROR 1290
#: "running with the --skip-grant-tables option", seen with 10.11.19); MySQL 8 documents that with
#: --initialize the init file runs in bootstrap mode where account-management statements such as CREATE
#: USER or GRANT are unavailable (init_file, MySQL 8.0 manual), its source setting opt_noacl under
#: opt_initialize (adjust_related_options).
INIT_FILE = "init.sql"


@SERVICES.register
class MySQL(ServiceKind):
    name = "mysql"
    params_schema = "kinds/mysql"
    binaries = ("mariadbd", "mariadb-install-db", "mariadb")
    image = "docker://mysql:8.0"
    #: the process exporter, mysqld_exporter
    exporter_ports = 2

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

    def init_file(self, ctx: ServiceContext) -> Path:
        """The 0600 SQL file the server executes at startup, before it accepts any connection."""
        return ctx.workdir / INIT_FILE

    def init_sql(self, ctx: ServiceContext) -> str:
        """Root's password first, then the benchmark database, its user and the exporter's account.

        One statement per line and no comments: MySQL before 8.0.18 reads init files that way."""
        s = ctx.secrets
        mysql8 = self._mysql8(ctx)
        if mysql8:  # --initialize-insecure made only root@localhost (caching_sha2_password, empty)
            sql = f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{s['MYSQL_ROOT_PASSWORD']}';\n"
        else:
            # one rule, native password: replaces install-db's "invalid password OR unix_socket" chain
            # (MariaDB's ALTER USER: IDENTIFIED {VIA|WITH} rule [OR rule] ...), so the system root user
            # loses its password-free way in too
            sql = (
                "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password "
                f"USING PASSWORD('{s['MYSQL_ROOT_PASSWORD']}');\n"
                # whatever else the data directory has (in `socket` mode the locked mariadb.sys; the
                # `normal` mode used before also made password-less root@127.0.0.1, @::1, @<host>):
                # only root over the socket and the accounts below remain
                "DELETE FROM mysql.global_priv WHERE NOT (User = 'root' AND Host = 'localhost');\n"
                "FLUSH PRIVILEGES;\n"
            )
        plugin = "WITH mysql_native_password " if mysql8 else ""
        return sql + (
            f"CREATE DATABASE IF NOT EXISTS `{s['MYSQL_DATABASE']}`;\n"
            f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED {plugin}BY '{s['MYSQL_PASSWORD']}';\n"
            f"GRANT ALL PRIVILEGES ON `{s['MYSQL_DATABASE']}`.* TO '{USER}'@'%';\n"
            # the mysqld exporter's own account: server status only, no data
            f"CREATE USER IF NOT EXISTS '{EXPORTER_USER}'@'%' IDENTIFIED {plugin}BY "
            f"'{s['MYSQL_EXPORTER_PASSWORD']}' WITH MAX_USER_CONNECTIONS 3;\n"
            f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{EXPORTER_USER}'@'%';\n"
            "FLUSH PRIVILEGES;\n"
        )

    def prepare_commands(self, ctx: ServiceContext) -> list[Command]:
        """Before the server starts: the 0600 init file, and a data directory with no server running.

        The init file stays for the deployment's life (0600, beside secrets.env, which holds the same
        passwords, in the same service directory): removing it once read would need a signal that the
        server has read it, and the TCP port is no such signal, since it listens before the file runs."""
        write_text(self.init_file(ctx), self.init_sql(ctx), perms=0o600)
        if self._mysql8(ctx):  # mysql:8.0, run as the calling user
            return [Command(["mysqld", "--no-defaults", "--initialize-insecure", f"--datadir={ctx.datadir}"])]
        argv = ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={ctx.datadir}"]
        # `socket`: root@localhost "sets an invalid root password but allows the system root user to
        # login as MariaDB root without a password" (scripts/mysql_install_db.sh usage), and
        # mysql_system_tables_data.sql then inserts tmp_user_socket only, not the password-less
        # tmp_user_nopasswd rows (root@localhost, @127.0.0.1, @::1, @<host>) of `normal`
        return [Command([*argv, "--auth-root-authentication-method=socket", "--skip-test-db"])]

    def command(self, ctx: ServiceContext) -> Command:
        p = ctx.params
        if self._mysql8(ctx):
            argv = ["mysqld", "--no-defaults", f"--datadir={ctx.datadir}", "--mysqlx=OFF"]
            argv += [f"--secure-file-priv={ctx.workdir}"]  # the image's default directory is read-only
        else:
            argv = ["mariadbd", "--no-defaults", "--user=root", f"--datadir={ctx.datadir}"]
        argv += [f"--init-file={self.init_file(ctx)}"]  # the accounts, before any connection (INIT_FILE)
        argv += [f"--socket={self._socket(ctx)}", f"--pid-file={ctx.workdir / 'mysqld.pid'}"]
        argv += [f"--bind-address={ctx.host}", f"--port={ctx.port}", "--skip-name-resolve"]
        argv += [
            f"--max-connections={p['max_connections']}",
            f"--innodb-buffer-pool-size={p['innodb_buffer_pool_mb']}M",
        ]
        return Command(argv)

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
