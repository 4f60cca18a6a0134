"""Faults injected into real local runs: a service killed mid-point, a client past its time limit,
Ctrl-C and SIGTERM to snakemake, two runs at once. What must hold: the error is recorded, the
workflow exits non-zero, measured points stay intact, no process is left, a rerun redoes only what
failed (docs/reliability.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import BIN, ROOT, snakemake, wait_until

pytestmark = pytest.mark.workflow

SWEEP = {
    "service": "redis",
    "client": "redis-benchmark",
    "client_params": {"tests": "get", "requests": 100000, "clients": 1},
    "sweep": {"pipeline": [1, 2, 3]},
}


def wait_for(condition, timeout: float = 120, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    wait_until(condition, timeout, interval, "fault trigger")


def process_of(name: str, service_dir: Path) -> psutil.Process | None:
    """The ``name`` process serving, or loading, the deployment in ``service_dir`` (by its port)."""
    port = str(json.loads((service_dir / "endpoint.json").read_text())["port"])
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == name and (f":{port}" in cmdline or f"-p {port}" in cmdline):
            return proc
    return None


def start_workflow(config: Path) -> subprocess.Popen:
    argv = [str(BIN / "snakemake"), "--profile", "profiles/local", "--configfile", str(config)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_service_killed_mid_point(make_config, workspace: Path, no_leftovers: float) -> None:
    config = make_config(SWEEP, name="kill")
    results = workspace / "results"
    points, service = results / "kill" / "points", results / "kill" / "service"

    def kill_during_second_load() -> None:  # points run in the scheduler's order, not the sweep's
        wait_for(lambda: any(points.glob("*/summary.json")))
        wait_for(lambda: process_of("redis-benchmark", service) is not None, interval=0.01)
        time.sleep(0.2)
        process_of("redis-server", service).kill()

    killer = threading.Thread(target=kill_during_second_load, daemon=True)
    killer.start()
    done = snakemake(config)
    killer.join(5)
    assert done.returncode != 0
    assert "point failed" in done.stdout + done.stderr
    summaries = {p.parent.name: p.read_bytes() for p in points.glob("*/summary.json")}
    measured = {name: data for name, data in summaries.items() if json.loads(data)["status"] == "ok"}
    attempts = {p.parent.parent.parent.name: p for p in points.glob("*/attempts/1/summary.json")}
    failed = [name for name, p in attempts.items() if not (p.parent / "superseded.txt").exists()]
    assert len(measured) == 1 and len(failed) == 1, (measured.keys(), failed)
    [(first, first_bytes)] = measured.items()
    assert json.loads(first_bytes)["status"] == "ok"  # measured before the fault: intact
    attempt = json.loads((points / failed[0] / "attempts" / "1" / "summary.json").read_text())
    assert attempt["status"] == "failed" and "redis-benchmark failed" in attempt["error"]
    # the failed point's own outputs stay on disk (keep-incomplete), marked incomplete: redone next run
    if (points / failed[0] / "summary.json").exists():
        assert json.loads((points / failed[0] / "summary.json").read_text())["status"] == "failed"
    assert not (service / "ready.json").exists()  # the dead deployment is forgotten
    # the point measured on it is kept as it was, and will be measured again on the next deployment
    assert (points / first / "attempts" / "1" / "superseded.txt").is_file()

    # the rerun deploys afresh and measures the experiment on it (one deployment per experiment); what
    # was measured on the dead deployment is kept, byte for byte, in attempts/
    again = snakemake(config)
    assert again.returncode == 0, again.stderr[-3000:]
    kept = points / first / "attempts" / "1"
    assert (kept / "summary.json").read_bytes() == first_bytes and (kept / "superseded.txt").is_file()
    for point in ("pipeline-1_r0", "pipeline-2_r0", "pipeline-3_r0"):
        assert json.loads((points / point / "summary.json").read_text())["status"] == "ok"
    deployments = {json.loads((points / p / "summary.json").read_text())["service"]["deployment"]
                   for p in ("pipeline-1_r0", "pipeline-2_r0", "pipeline-3_r0")}  # fmt: skip
    assert len(deployments) == 1  # every point of the experiment from one deployment


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_stops_every_service(make_config, workspace: Path, no_leftovers: float, sig) -> None:
    config = make_config(
        {**SWEEP, "client_params": {**SWEEP["client_params"], "requests": 400000}}, name="intr"
    )
    results = workspace / "results"
    run = start_workflow(config)
    try:
        wait_for(lambda: (results / "intr" / "points" / "pipeline-1_r0" / "client.log").is_file())
        time.sleep(1)
        run.send_signal(sig)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    for service_dir in (results / "intr" / "service", results / "monitoring"):
        stopped = json.loads((service_dir / "stopped.json").read_text())
        assert stopped["how"] in ("SIGTERM", "SIGKILL"), out[-2000:]
    assert not (results / "intr" / "points" / "pipeline-1_r0" / "summary.json").exists() or json.loads(
        (results / "intr" / "points" / "pipeline-1_r0" / "summary.json").read_text()
    )["status"] in ("ok", "failed")


def test_two_runs_at_once(make_config, workspace: Path, tmp_path: Path, no_leftovers: float) -> None:
    """Two runs of the same experiment, same machine, same time, separate results: no port, file or
    job-name collision, both complete."""
    small = {
        **SWEEP,
        "client_params": {**SWEEP["client_params"], "requests": 20000},
        "sweep": {"pipeline": [1, 2]},
    }
    config = make_config(small, name="twin")
    second = tmp_path / "second.yaml"
    text = config.read_text().replace(str(workspace / "results"), str(tmp_path / "results2"))
    second.write_text(text)
    assert str(tmp_path / "results2") in text
    runs = [start_workflow(config), start_workflow(second)]
    outs = [r.communicate(timeout=300)[0] for r in runs]
    for run, out in zip(runs, outs, strict=True):
        assert run.returncode == 0, out[-3000:]
    ports = set()
    for results in (workspace / "results", tmp_path / "results2"):
        table = (results / "summary.csv").read_text()
        assert "twin" in table and ",failed," not in table
        ports.add(json.loads((results / "twin" / "service" / "endpoint.json").read_text())["port"])
    assert len(ports) == 2
