"""Shared fixtures: real services started by the test set-up, and leftover-process checks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from aibench.ports import free_port
from aibench.probes import NotReady, poll, redis_ping

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICE_NAMES = {
    "redis-server",
    "redis-benchmark",
    "prometheus",
    "prometheus-process-exporter",
    "prometheus-redis-exporter",
    "prometheus-node-exporter",
}

#: the project's own long-running processes: service jobs, and the client nodes' agents
OUR_MODULES = ("aibench.serve", "aibench.clients.agent")

# The leftover checks count only this session's processes, never those of another run or test session
# on the same machine: descendants of this process, or processes carrying this session's marker in
# their environment (inherited by everything started from here; the apptainer stand-in keeps it).
SESSION_MARKER = "AIBENCH_TEST_SESSION"
os.environ.setdefault(SESSION_MARKER, uuid.uuid4().hex)


def _ours(proc: psutil.Process, since: float) -> bool:
    try:
        if proc.create_time() < since - 1 or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
        if not (proc.name() in SERVICE_NAMES or any(m in cmdline for m in OUR_MODULES)):
            return False
        if any(parent.pid == os.getpid() for parent in proc.parents()):
            return True
        # a process that retitles itself (redis-server) overwrites its environment block; one whose
        # parent died was re-parented: either way the marker or the ancestry tells
        return proc.environ().get(SESSION_MARKER) == os.environ[SESSION_MARKER]
    except psutil.Error:
        return False


def started_since(since: float) -> list[str]:
    """Service-like processes (servers, exporters, service jobs) created after ``since``."""
    return [f"{p.pid} {' '.join(p.cmdline())}" for p in psutil.process_iter() if _ours(p, since)]


def wait_none_started_since(since: float, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = started_since(since)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "") -> None:
    """Poll ``condition`` until true, with a deadline (aibench.probes.poll); TimeoutError naming ``what``."""

    def check() -> None:
        if not condition():
            raise NotReady(what or "condition not met")

    try:
        poll(check, timeout, interval)
    except NotReady as exc:
        raise TimeoutError(str(exc)) from None


@pytest.fixture
def no_leftovers() -> Iterator[float]:
    """Fails the test if a service-like process it started is still alive afterwards."""
    since = time.time()
    yield since
    left = wait_none_started_since(since)
    for line in left:  # clean up so one failure does not cascade
        psutil.Process(int(line.split()[0])).kill()
    assert not left, f"processes left running: {left}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real redis-server on 127.0.0.1 with a password, for client tests."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run `make test` (it installs the system packages)")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    password = "test-" + str(port) + "-secret"
    conf = workdir / "redis.conf"
    conf.write_text(
        f'bind 127.0.0.1\nport {port}\nsave ""\nappendonly no\ndir {workdir}\nrequirepass {password}\n'
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL)
    try:
        poll(lambda: redis_ping("127.0.0.1", port, password), 20, 0.05)
        yield {"host": "127.0.0.1", "port": port, "password": password}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    return tmp_path


@pytest.fixture
def make_config(workspace: Path) -> Callable[..., Path]:
    def make(experiment: dict | None = None, name: str = "redis-e2e", **config: object) -> Path:
        if experiment is not None:
            (workspace / "recipes" / "experiments" / f"{name}.yaml").write_text(yaml.safe_dump(experiment))
        data = {
            "experiments": [name],
            "results": str(workspace / "results"),
            "recipes": str(workspace / "recipes"),
            **config,
        }
        path = workspace / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def run_to_end(argv: list[str], timeout: float, **popen: Any) -> subprocess.CompletedProcess:
    """Run ``argv`` (text, output captured) in its own session. Past ``timeout``, or when the test
    itself is cut short (pytest-timeout, Ctrl-C), it is interrupted as a user would (SIGINT to its
    process group: Snakemake cancels its jobs and stops its services) and killed if still there 120 s
    later, so a test that fails this way leaves nothing running."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        pytest.fail(f"{' '.join(argv[:3])} ... did not end within {timeout:g} s; interrupted.\n{err[-6000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def aibench(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """The `aibench` command as a user runs it (this interpreter, from the project root), to its end."""
    return run_to_end([sys.executable, "-m", "aibench.cli", *map(str, args)], timeout, cwd=ROOT)


def snakemake(
    config: Path, *args: str, profile: str = "profiles/local", timeout: float = 600
) -> subprocess.CompletedProcess:
    """The real workflow on ``config``; the run must end (or is interrupted) within ``timeout``."""
    argv = [str(BIN / "snakemake"), "--profile", profile, "--configfile", str(config), *args]
    return run_to_end(argv, timeout, cwd=ROOT)
