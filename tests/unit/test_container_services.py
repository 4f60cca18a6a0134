"""Service kinds whose images cannot run here (no Apptainer on this machine, no Docker Hub): what the
service job would run inside docker://mysql:8.0 and docker://chromadb/chroma is checked as text. The
native paths (MariaDB, `chroma run`) run for real in tests/integration."""

from __future__ import annotations

from pathlib import Path

from aibench.recipes import load_service
from aibench.serve import gateway_command
from aibench.services import SERVICES
from aibench.services.base import ServiceContext
from aibench.token_gateway import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"MYSQL_ROOT_PASSWORD": "root-secret", "MYSQL_PASSWORD": "user-secret", "MYSQL_USER": "bench",
           "MYSQL_EXPORTER_PASSWORD": "exporter-secret",
           "MYSQL_DATABASE": "sbtest", "CHROMA_TOKEN": "token-secret-0123456789",
           "REDIS_PASSWORD": "redis-secret", "REDIS_EXPORTER_PASSWORD": "exporter-redis-secret"}  # fmt: skip


def context(
    kind: str, tmp_path: Path, containerized: bool, backend_port: int | None = None
) -> ServiceContext:
    params = load_service(ROOT / "recipes" / "services" / f"{kind}.yaml").params
    return ServiceContext("exp", params, SECRETS, "10.1.2.3", 40001, tmp_path, tmp_path / "data",
                          backend_port=backend_port, containerized=containerized)  # fmt: skip


def test_mysql8_initialises_and_runs_as_mysql_in_its_image(tmp_path: Path) -> None:
    kind = SERVICES.create("mysql")
    ctx = context("mysql", tmp_path, containerized=True)
    [prepare] = kind.prepare_commands(ctx)
    assert prepare.argv == [
        "mysqld",
        "--no-defaults",
        "--initialize-insecure",
        f"--datadir={tmp_path / 'data'}",
    ]
    argv = kind.command(ctx).argv
    assert argv[0] == "mysqld" and "--mysqlx=OFF" in argv and "--user=root" not in argv
    assert "--bind-address=10.1.2.3" in argv and "--port=40001" in argv
    # root's password is set by the init file before the first connection: no password-less set-up step
    assert kind.setup_commands(ctx) == [] and f"--init-file={tmp_path / 'init.sql'}" in argv
    sql = (tmp_path / "init.sql").read_text()
    assert "mysql.global_priv" not in sql  # a MariaDB table; MySQL 8's initialise makes only root@localhost
    assert "IDENTIFIED WITH mysql_native_password BY 'user-secret'" in sql
    assert "'exporter'@'%' IDENTIFIED WITH mysql_native_password BY 'exporter-secret'" in sql
    assert "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'exporter'@'%'" in sql  # status, no data
    assert (tmp_path / "init.sql").stat().st_mode & 0o777 == 0o600
    assert not any("secret" in part for c in (prepare, kind.command(ctx)) for part in c.argv)


def test_mariadb_locally(tmp_path: Path) -> None:
    kind = SERVICES.create("mysql")
    ctx = context("mysql", tmp_path, containerized=False)
    assert kind.prepare_commands(ctx)[0].argv[0] == "mariadb-install-db"
    assert kind.command(ctx).argv[:2] == ["mariadbd", "--no-defaults"]
    kind.setup_commands(ctx)
    assert "DELETE FROM mysql.global_priv" in (tmp_path / "init.sql").read_text()


def test_chroma_listens_on_loopback_behind_the_gateway(tmp_path: Path) -> None:
    kind = SERVICES.create("chroma")
    ctx = context("chroma", tmp_path, containerized=True, backend_port=40002)
    argv = kind.command(ctx).argv
    assert argv[:2] == ["chroma", "run"] and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "40002" and argv[argv.index("--path") + 1] == str(
        tmp_path / "data"
    )
    gateway = gateway_command(ctx, SECRETS["CHROMA_TOKEN"])
    assert (
        "--listen" in gateway.argv and "10.1.2.3:40001" in gateway.argv and "127.0.0.1:40002" in gateway.argv
    )
    assert (
        SECRETS["CHROMA_TOKEN"] not in " ".join(gateway.argv)
        and gateway.env[TOKEN_ENV] == SECRETS["CHROMA_TOKEN"]
    )


def test_sidecars_under_apptainer_run_from_their_images(tmp_path: Path) -> None:
    """On MeluXina every exporter but the GPU one runs from its pinned image (text only: no Apptainer
    here); cAdvisor only there; the GPU exporter natively, only for services with GPUs."""
    from aibench.contracts import Runtime
    from aibench.monitoring import sidecars
    from aibench.rundir import ServiceDir

    runtime, service_dir = Runtime("apptainer", {"binary": "apptainer"}), ServiceDir(tmp_path)
    ctx = context("mysql", tmp_path, containerized=True)
    node, cadvisor, gpu = sidecars.node_level(ctx, 1, [41001, 41002, 41003])
    assert (node.name, cadvisor.name, gpu.name) == ("node", "cadvisor", "gpu")
    wrapped = sidecars.exporter_command(node, runtime, service_dir).argv
    image = "docker://quay.io/prometheus/node-exporter:v1.5.0"
    # called by the path the image keeps it at (aibench.images), never through the host's PATH
    assert wrapped[:2] == ["apptainer", "exec"] and wrapped[wrapped.index(image) + 1] == "/bin/node_exporter"
    assert "--web.listen-address=10.1.2.3:41001" in wrapped
    advisor = sidecars.exporter_command(cadvisor, runtime, service_dir).argv
    assert "/sys" in advisor and "--docker_only=false" in advisor and "--port=41002" in advisor
    gpu_argv = sidecars.exporter_command(gpu, runtime, service_dir).argv
    assert gpu_argv[1:3] == ["-m", "aibench.monitoring.gpu_exporter"]
    kind = SERVICES.create("mysql")
    mysqld = kind.exporters(ctx, [41004, 41005])[1]
    inside = sidecars.exporter_command(mysqld, runtime, service_dir).argv
    assert "docker://prom/mysqld-exporter:v0.14.0" in inside and "exporter-secret" not in " ".join(inside)
    kind = SERVICES.create("redis")
    redis = kind.exporters(context("redis", tmp_path, containerized=True), [41006, 41007, 41008])[1]
    assert redis.name == "redis-exporter" and not redis.scraped  # behind its /metrics-only relay
    wrapped = sidecars.exporter_command(redis, runtime, service_dir).argv
    image = "docker://oliver006/redis_exporter:v1.45.0"
    assert wrapped[wrapped.index(image) + 1] == "/redis_exporter"  # a scratch image: / is on no PATH
    cnf = tmp_path / "exporter.my.cnf"
    assert "password=exporter-secret" in cnf.read_text() and cnf.stat().st_mode & 0o777 == 0o600
    local = sidecars.node_level(context("mysql", tmp_path, containerized=False), 0, [1])
    assert [e.name for e in local] == ["node"]  # locally: no cAdvisor, no GPU
