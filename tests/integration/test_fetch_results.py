"""`aibench fetch-results` against a real sshd on 127.0.0.1 (a private instance with a host key and a
user key made for the test, started and stopped here), as a laptop reaches the login host: what comes
is the run's records, figures and report; never an owner-only file, a service's data or its TSDB; a
fetch cut short completes when run again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aibench.ports import free_port
from aibench.probes import poll, tcp
from tests.conftest import aibench

ROOT = Path(__file__).resolve().parents[2]
SSHD = Path("/usr/sbin/sshd")


@pytest.fixture
def login_host(tmp_path: Path) -> Iterator[list[str]]:
    """sshd on 127.0.0.1, a free port; yields the fetch command's options that reach it."""
    if not SSHD.exists() or shutil.which("rsync") is None:
        pytest.fail("sshd or rsync is not installed: run `make test` (it installs the system packages)")
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "user.pub").read_text())
    (keys / "authorized_keys").chmod(0o600)
    port = free_port()
    host_key = (keys / "host.pub").read_text().split()
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\nPidFile {keys / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "UsePAM no\nStrictModes no\nAllowTcpForwarding no\nX11Forwarding no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    sshd = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        poll(lambda: tcp("127.0.0.1", port), 20, 0.1)
        known = f"UserKnownHostsFile={keys / 'known_hosts'}"
        yield ["--port", str(port), "-i", str(keys / "user"), "-o", known, "-o", "StrictHostKeyChecking=yes",
               "-o", "BatchMode=yes"]  # fmt: skip
    finally:
        sshd.terminate()
        sshd.wait(10)



def a_run(results: Path) -> dict[str, bytes]:
    """A finished run's files, shareable ones and not; returns those a fetch must bring."""
    shared = {
        "manifest.json": b"{}", "summary.csv": b"experiment\n", "provenance/config/config.yaml": b"x: 1\n",
        "e/points/clients-1_r0/summary.json": b"{}", "e/points/clients-1_r0/raw.csv.gz": b"\x1f\x8b raw",
        "e/points/clients-1_r0/client.log": b"log", "e/service/spec.json": b"{}",
        "e/service/service.log": b"",
        "monitoring/stopped.json": b"{}", "figures/e/clients.png": b"\x89PNG", "report.html": b"<html>",
    }  # fmt: skip
    private = {
        "e/service/secrets.env": (b"REDIS_PASSWORD=hunter2\n", 0o600),
        "e/service/redis.conf": (b"requirepass hunter2\n", 0o600),
        "e/points/clients-2_r0/summary.json": (b"{} owner-only", 0o600),  # a record's name, but 0600
        "monitoring/data/wal/00000000": (b"tsdb", 0o644),  # the TSDB: service data, whatever its mode
        "e/service/data/dump.rdb": (b"db", 0o644),
        "e/service/replaced/20261201T000000-abcdef/data/dump.rdb": (b"old", 0o644),
    }
    # a shareable file whose name, read as lines, would also name the secret: not a way in
    crafted = "figures/x\ne/service/secrets.env"
    shared[crafted] = b"crafted"
    for name, data in shared.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_bytes(data)
        (results / name).chmod(0o644)
    for name, (data, mode) in private.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_bytes(data)
        (results / name).chmod(mode)
    return shared


def files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_fetch_brings_the_records_home_and_no_secret(tmp_path: Path, login_host: list[str]) -> None:
    results = tmp_path / "remote" / "results"
    expected = a_run(results)
    dest = tmp_path / "laptop" / "run1"
    done = aibench("fetch-results", f"root@127.0.0.1:{results}", dest, *login_host)
    assert done.returncode == 0, done.stderr
    assert files(dest) == expected
    assert f"{len(expected)} files" in done.stdout
    assert not any(os.stat(p).st_mode & 0o022 for p in dest.rglob("*"))  # nothing group/world-writable

    # cut short: one file missing, one half-written; the same command completes it
    (dest / "e/points/clients-1_r0/raw.csv.gz").unlink()
    (dest / "report.html").write_bytes(b"<h")
    os.utime(dest / "report.html", (time.time() - 3600, time.time() - 3600))
    again = aibench("fetch-results", f"root@127.0.0.1:{results}", dest, *login_host)
    assert again.returncode == 0, again.stderr
    assert files(dest) == expected


def test_a_directory_that_is_not_a_finished_run_is_refused(tmp_path: Path, login_host: list[str]) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.csv").write_text("x\n")
    done = aibench("fetch-results", f"root@127.0.0.1:{tmp_path / 'half'}", tmp_path / "dest", *login_host)
    assert done.returncode == 2 and "no manifest.json" in done.stderr
    assert not (tmp_path / "dest").exists()
    missing = aibench("fetch-results", f"root@127.0.0.1:{tmp_path / 'nope'}", tmp_path / "dest", *login_host)
    assert missing.returncode == 2 and "listing the run failed" in missing.stderr


@pytest.mark.parametrize("remote", ["login.lxp.lu", "u1@host:-e", "u1@host:"])
def test_a_malformed_remote_is_refused_before_connecting(remote: str) -> None:
    done = aibench("fetch-results", remote)
    assert done.returncode == 2 and "expected USER@HOST:PATH" in done.stderr
