"""The container path of a service job, run through a STAND-IN apptainer (tests/standins/apptainer).

No Apptainer build exists for this machine: the stand-in records its arguments and runs the inner
command natively. What it proves: the command line the service job builds (exec, --cleanenv,
--env-file, binds, the image pulled once into image_dir) starts a working, password-protected
service. The real Apptainer path is verified on MeluXina, not in CI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aibench import lifecycle
from aibench.probes import NotReady, redis_ping
from aibench.recipes import load_service
from tests.conftest import BIN, ROOT, snakemake

STANDINS = ROOT / "tests" / "standins"
REDIS = load_service(ROOT / "recipes" / "services" / "redis.yaml").params


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "apptainer-calls.jsonl"
    monkeypatch.setenv("PATH", f"{STANDINS}:{BIN}:{os.environ['PATH']}")
    monkeypatch.setenv("APPTAINER_STANDIN_LOG", str(log))
    return log


def test_service_runs_in_its_image(tmp_path: Path, standin: Path, no_leftovers: float) -> None:
    service_dir = tmp_path / "c" / "service"
    images = tmp_path / "images"
    settings = {"binary": "apptainer", "image_dir": str(images), "args": ["--bind", "/etc/ssl/certs"]}
    lifecycle.deploy(
        service_dir, experiment="c", kind="redis", params=REDIS, runtime="apptainer", apptainer=settings
    )
    try:
        ready = lifecycle.wait_ready(service_dir, timeout_s=30, interval_s=0.05)
        password = (service_dir / "secrets.env").read_text().split("=", 1)[1].strip()
        redis_ping(ready["host"], ready["port"], password)
        with pytest.raises(NotReady):
            redis_ping(ready["host"], ready["port"], None)
    finally:
        lifecycle.stop(service_dir)
    calls = [json.loads(line) for line in standin.read_text().splitlines()]
    pull = next(c for c in calls if c[0] == "pull")
    assert pull == ["pull", str(images / "redis_7-alpine.sif"), "docker://redis:7-alpine"]
    run = next(c for c in calls if c[0] == "exec")
    sif = str(images / "redis_7-alpine.sif")
    assert run[:4] == ["exec", "--cleanenv", "--env-file", str(service_dir / "service.env")]
    assert ["--bind", str(service_dir)] == run[4:6] and "/etc/ssl/certs" in run
    assert run[run.index(sif) + 1 :] == ["redis-server", str(service_dir / "redis.conf")]
    assert "--nv" not in run  # no GPU asked for
    assert password not in json.dumps(calls)


def test_meluxina_profile_dry_run(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", str(tmp_path / "scratch"))
    config = tmp_path / "c.yaml"
    config.write_text(f"experiments: [redis-default]\nresults: {tmp_path / 'results'}\n")
    # the profile's own config files (config.yaml + meluxina.yaml), then this run's
    files = ("config/config.yaml", "config/meluxina.yaml", str(config))
    done = snakemake(config, "-n", "--configfile", *files, profile="profiles/meluxina")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert "run_client" in out and "deploy_service" in out
    assert "deploy_grafana" in out and "stop_grafana" in out  # monitoring.grafana: true on MeluXina
    assert not (tmp_path / "results").exists()  # a dry run starts and submits nothing
