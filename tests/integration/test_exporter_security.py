"""The Redis exporter hands out no credential (issue: its multi-target /scrape endpoint authenticates to
whatever target a caller names). It listens on loopback behind aibench.metrics_relay, which serves only
GET /metrics, and it logs in as its own ACL user that may read statistics, not data."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest
import redis
import requests

from aibench import lifecycle
from aibench.contracts import DeploymentSpec
from aibench.files import read_json
from aibench.ports import free_port
from aibench.probes import http, poll
from aibench.secrets import read_secrets
from tests.integration.test_lifecycle import REDIS


def trap() -> tuple[int, list[bytes]]:
    """A listener on 127.0.0.1 that records whatever a connecting client sends (an AUTH, say)."""
    port = free_port()
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(5)

    def accept() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            received.append(conn.recv(4096))
        conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return port, received


def test_exporter_gives_no_credential_to_a_named_target(tmp_path: Path, no_leftovers: float) -> None:
    service_dir = tmp_path / "sec" / "service"
    lifecycle.deploy(service_dir, DeploymentSpec("sec", "redis", REDIS, targets_dir=str(tmp_path / "t")))
    try:
        ready = lifecycle.wait_ready(service_dir, timeout_s=20, interval_s=0.05)
        exporters = {e["name"]: e["port"] for e in read_json(service_dir / "endpoint.json")["exporters"]}
        relay = f"http://{ready['host']}:{exporters['redis']}"
        poll(lambda: http(f"{relay}/metrics", timeout=2), 20, 0.1)  # exporters start beside the service
        metrics = requests.get(f"{relay}/metrics", timeout=10)
        assert metrics.status_code == 200 and "redis_up 1" in metrics.text  # scraped as its ACL user
        port, received = trap()
        for path in (f"/scrape?target=redis://127.0.0.1:{port}", f"/x/../scrape?target=127.0.0.1:{port}"):
            assert requests.get(relay + path, timeout=10).status_code == 404
        assert requests.post(f"{relay}/metrics", timeout=10).status_code == 404
        assert not received  # nothing reached the target, so no AUTH <password> either
        # the exporter's own account reads statistics only: no key, no data command
        secrets = read_secrets(service_dir / "secrets.env")
        as_exporter = redis.Redis(ready["host"], ready["port"], username="exporter",
                                  password=secrets["REDIS_EXPORTER_PASSWORD"])  # fmt: skip
        assert "redis_version" in as_exporter.info()
        denials = (lambda: as_exporter.get("k"), lambda: as_exporter.set("k", "v"), as_exporter.flushall,
                   lambda: as_exporter.config_get("requirepass"))  # CONFIG GET would hand out the password
        for denied in denials:
            with pytest.raises(redis.exceptions.NoPermissionError):
                denied()
        # the targets Prometheus scrapes: the relay only, never the exporter's loopback port
        targets = " ".join(p.read_text() for p in (tmp_path / "t").glob("*.json"))
        assert f"{ready['host']}:{exporters['redis']}" in targets
        assert f":{exporters['redis-exporter']}" not in targets
    finally:
        lifecycle.stop(service_dir)
