"""`aibench query` against real Prometheus both ways: the run's live one (a real deployment through
aibench.lifecycle, scraping itself through file_sd), then, once it has stopped, a temporary one over a
copy of its saved TSDB, which it leaves as it found it."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from aibench import lifecycle
from aibench.contracts import DeploymentSpec
from aibench.files import write_json
from aibench.monitoring.file_sd import write_target
from aibench.monitoring.prometheus import PrometheusClient
from aibench.probes import NotReady, poll
from aibench.rundir import RunDir
from tests.conftest import aibench
from tests.unit.test_compare import write_run

ROOT = Path(__file__).resolve().parents[2]



def digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def test_query_live_then_from_the_saved_tsdb(tmp_path: Path, no_leftovers: float) -> None:
    results = tmp_path / "results"
    monitoring = RunDir(results).monitoring
    targets = monitoring.path / "targets"
    targets.mkdir(parents=True)
    spec = DeploymentSpec("monitoring", "prometheus", {"scrape_interval_s": 1, "targets_dir": str(targets)})
    lifecycle.deploy(monitoring, spec)
    try:
        ready = lifecycle.wait_ready(monitoring, timeout_s=60, interval_s=0.1)
        address = f"{ready['host']}:{ready['port']}"
        write_target(targets, "self", address, {"experiment": "redis-default", "exporter": "self"})
        client = PrometheusClient(f"http://{address}")

        def scraped_a_while() -> None:
            result = client.query('count_over_time(up{exporter="self"}[1m])')
            if not result or float(result[0]["value"][1]) < 4:
                raise NotReady(f"samples so far: {result}")

        started = time.time()
        poll(scraped_a_while, 60, 0.2)
        # a point whose window spans the samples so far
        write_run(results, {10: [1000.0]})
        summary_path = RunDir(results).point("redis-default", "clients-10_r0").summary
        summary = json.loads(summary_path.read_text())
        summary["window"] = {"start": started, "end": time.time(), "duration_s": time.time() - started}
        write_json(summary_path, summary)

        live = aibench("query", 'up{exporter="self"}', "--results", results, "--json")
        assert live.returncode == 0, live.stderr
        (row,) = json.loads(live.stdout)
        assert (row["exporter"], row["value"]) == ("self", 1.0)
        table = aibench("query", 'up{exporter="self"}', "--results", results)
        assert f"from the run's live Prometheus at http://{address}" in table.stdout
        point = ("--experiment", "redis-default", "--point", "clients-10_r0")
        ranged = aibench("query", 'up{exporter="self"}', "--results", results, *point, "--range", "--csv")
        assert ranged.returncode == 0, ranged.stderr
        live_samples = ranged.stdout.splitlines()
        assert live_samples[0].split(",")[-2:] == ["time", "value"] and len(live_samples) >= 4
    finally:
        lifecycle.stop(monitoring)

    before = digest(monitoring.data)
    saved = aibench("query", 'up{exporter="self"}', "--results", results, "--experiment", "redis-default",
                    "--point", "clients-10_r0", "--range", "--csv")  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.splitlines() == live_samples  # the same samples, read back from the TSDB
    table = aibench("query", 'up{exporter="self"}', "--results", results, "--experiment", "redis-default",
                    "--point", "clients-10_r0")  # fmt: skip
    assert "from a temporary Prometheus over the run's saved TSDB" in table.stdout and "self" in table.stdout
    assert digest(monitoring.data) == before  # queried from a copy: the run's TSDB is untouched

    wrong = aibench("query", "rate(up[", "--results", results)
    assert wrong.returncode == 2 and "parse error" in wrong.stderr
    unknown = aibench("query", "up", "--results", results, "--experiment", "redis-default", "--point", "nope")
    assert unknown.returncode == 2 and "no point 'nope' of experiment 'redis-default'" in unknown.stderr


def test_query_without_monitoring_says_so(tmp_path: Path) -> None:
    write_run(tmp_path / "results", {10: [1000.0]})
    done = aibench("query", "up", "--results", tmp_path / "results")
    assert done.returncode == 2 and "no saved TSDB" in done.stderr


def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path) -> None:
    done = aibench("query", "up", "--results", tmp_path, "--range")
    assert done.returncode == 2 and "--range needs a window" in done.stderr
    done = aibench("query", "up", "--results", tmp_path, "--point", "p")
    assert done.returncode == 2 and "--point needs --experiment" in done.stderr
