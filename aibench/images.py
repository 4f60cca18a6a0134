"""The image-facts table: for each container image the project runs, where its programs are inside it.

Apptainer's `exec` ignores an image's ENTRYPOINT, CMD and USER and resolves a bare command on the
image's own PATH (Apptainer's default PATH when the image sets none), so a program outside that PATH
must be called by its absolute path: the facts below say which. Each entry names the upstream build
file it was read from (docs/images.md has the full table, with users, bases and ports, and how the
tests' stand-in images differ). Re-read them when a pinned tag changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageFacts:
    ref: str
    #: command name -> absolute path inside the image
    binaries: dict[str, str]
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


FACTS: dict[str, ImageFacts] = {
    f.ref: f
    for f in (
        ImageFacts(
            "docker://redis:7-alpine",
            {"redis-server": "/usr/local/bin/redis-server", "redis-cli": "/usr/local/bin/redis-cli"},
            source="redis/docker-library-redis:7.4/alpine/Dockerfile@e5650da",
        ),
        ImageFacts(
            "docker://oliver006/redis_exporter:v1.45.0",
            {"redis_exporter": "/redis_exporter"},
            source="oliver006/redis_exporter:docker/Dockerfile@v1.45.0 (FROM scratch; no PATH entry for /)",
            notes=("its /scrape?target= endpoint is always on in v1.45.0: bind it to loopback only",),
        ),
        ImageFacts(
            "docker://prom/prometheus:v2.53.5",
            {"prometheus": "/bin/prometheus", "promtool": "/bin/promtool"},
            source="prometheus/prometheus:Dockerfile@v2.53.5",
        ),
        ImageFacts(
            "docker://quay.io/prometheus/node-exporter:v1.5.0",
            {"node_exporter": "/bin/node_exporter"},
            source="prometheus/node_exporter:Dockerfile@v1.5.0",
        ),
        ImageFacts(
            "docker://ncabatoff/process-exporter:0.7.10",
            {"process-exporter": "/bin/process-exporter"},
            source="ncabatoff/process-exporter:Dockerfile@v0.7.10 (FROM scratch)",
        ),
        ImageFacts(
            "docker://prom/mysqld-exporter:v0.14.0",
            {"mysqld_exporter": "/bin/mysqld_exporter"},
            source="prometheus/mysqld_exporter:Dockerfile@v0.14.0",
        ),
        ImageFacts(
            "docker://gcr.io/cadvisor/cadvisor:v0.49.1",
            {"cadvisor": "/usr/bin/cadvisor"},
            source="google/cadvisor:deploy/Dockerfile@v0.49.1",
        ),
        ImageFacts(
            "docker://grafana/grafana:11.6.1",
            {"grafana": "/usr/share/grafana/bin/grafana"},
            source="grafana/grafana:Dockerfile@78515af (11.6/12.0 period; the v11.6.1 tag itself not read)",
        ),
        ImageFacts(
            "docker://mysql:8.0",
            {"mysqld": "/usr/sbin/mysqld", "mysql": "/usr/bin/mysql"},
            source="docker-library/mysql:8.0/Dockerfile.oracle@6b2fc01 (mysql-community-server-minimal RPM)",
        ),
        ImageFacts(
            "docker://mariadb:10.11",
            {
                "mariadbd": "/usr/sbin/mariadbd",
                "mariadb-install-db": "/usr/bin/mariadb-install-db",
                "mariadb": "/usr/bin/mariadb",
            },
            source="MariaDB/mariadb-docker:10.11/Dockerfile (MariaDB's Debian/Ubuntu packages)",
        ),
        ImageFacts(
            "docker://chromadb/chroma:1.5.9",
            {"chroma": "/usr/local/bin/chroma"},
            source="chroma-core/chroma:rust/Dockerfile@1.5.9 (target cli)",
        ),
        ImageFacts(
            "docker://ghcr.io/ggml-org/llama.cpp:server-cuda-b11459",
            {"llama-server": "/app/llama-server"},
            source="ggml-org/llama.cpp:.devops/cuda.Dockerfile (target server; its b11459 copy not read)",
            notes=("ENV LLAMA_ARG_HOST=0.0.0.0: pass --host", "shared libraries in /app, no LD_LIBRARY_PATH"),
        ),
        ImageFacts(
            "docker://ollama/ollama:0.5.7",
            {"ollama": "/bin/ollama"},
            source="ollama/ollama:Dockerfile@v0.5.7",
        ),
        ImageFacts(
            "docker://vllm/vllm-openai:v0.6.6",
            {"python3": "/usr/bin/python3"},
            source="vllm-project/vllm:Dockerfile (vllm-openai stage; the v0.6.6 copy itself not read)",
        ),
        ImageFacts(
            "docker://python:3.11-slim-bookworm",
            {
                "python": "/usr/local/bin/python",
                "python3": "/usr/local/bin/python3",
                "pip": "/usr/local/bin/pip",
            },
            source="docker-library/python:3.11/slim-bookworm/Dockerfile@4f07059",
        ),
    )
}


def _key(ref: str) -> str:
    return ref if "://" in ref else f"docker://{ref}"


def in_image(ref: str, command: str) -> str:
    """``command`` as the image runs it: its absolute path when the table knows it, else as given
    (a name the image's PATH resolves, or a path the caller bound in)."""
    facts = FACTS.get(_key(ref))
    if facts is None or "/" in command:
        return command
    return facts.binaries.get(command, command)


def provides(ref: str | None, command: str) -> bool:
    """Whether the image ``ref`` is known to hold ``command`` (e.g. a MariaDB image holds mariadbd)."""
    facts = FACTS.get(_key(ref)) if ref else None
    return facts is not None and command in facts.binaries
