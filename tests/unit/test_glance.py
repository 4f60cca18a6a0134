"""`aibench results`: a run's headline numbers per experiment in the terminal (aibench.results.glance),
from a results directory or an archive: the shipped example run, and runs written in the real summary
schema with intervals, a small sample and a failed point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console

from aibench.files import write_json
from aibench.results.compare import load_run
from aibench.results.glance import cell, glance, print_results
from tests.conftest import aibench
from tests.unit.test_compare import make_archive, with_intervals, write_run

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "local-run.tar.gz"



def test_the_shipped_run_at_a_glance_matches_its_table() -> None:
    glances = {g.experiment: g for g in glance(SHIPPED)}
    assert set(glances) == set(load_run(SHIPPED)["experiment"])
    redis = glances["redis-default"]
    assert redis.columns[:4] == ["point", "clients", "pipeline", "command"]
    assert redis.columns[4] == "throughput\nmean (ops/s)" and redis.failed == 0
    assert len(redis.rows) == 2 * redis.points  # a row per Redis command: GET, SET
    tidy = load_run(SHIPPED)
    get = tidy[(tidy["point"] == "clients-10_pipeline-16_r0") & (tidy["metric"] == "throughput")
               & (tidy["command"] == "GET")]  # fmt: skip
    shown = next(r for r in redis.rows if r[0] == "clients-10_pipeline-16_r0" and r[3] == "GET")
    assert shown[4] == f"{get['value'].iloc[0]:.0f}"
    # Chroma's k and batch_size qualify one metric each: one row per point, not one per label
    chroma = glances["chroma-concurrency"]
    assert len(chroma.rows) == chroma.points and "k" not in chroma.columns


def test_intervals_small_samples_and_failed_points_are_shown(tmp_path: Path) -> None:
    run = with_intervals(write_run(tmp_path / "run", {1: [100.0], 10: [1000.0]}), 20.0)
    failed = write_run(tmp_path / "failed", {50: [1.0]}, status="failed")
    target = next(run.glob("*/points")) / "clients-50_r0"
    (next(failed.glob("*/points/*"))).rename(target)
    summary = json.loads((target / "summary.json").read_text())
    summary["error"] = "redis-benchmark exited 1: Connection refused\nTraceback ..."
    write_json(target / "summary.json", summary)
    small = next(run.glob("*/points/clients-1_r0/summary.json"))
    data = json.loads(small.read_text())
    for metric in data["metrics"]:
        if metric["name"] == "throughput":
            metric.update(ci_high=None, low_n=True)
    write_json(small, data)

    (only,) = glance(run)
    assert (only.points, only.failed) == (3, 1)
    assert [r[0] for r in only.rows] == ["clients-1_r0", "clients-10_r0", "clients-50_r0"]  # by value
    by_point = {r[0]: r for r in only.rows}
    assert only.columns[:3] == ["point", "clients", "throughput\nmean (ops/s)"]  # one command: no column
    assert by_point["clients-10_r0"][2] == "1000 [980, 1020]"
    assert by_point["clients-1_r0"][2] == "100 [80, …] ~"
    assert by_point["clients-50_r0"][-1] == "FAILED: redis-benchmark exited 1: Connection refused"
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    assert print_results(run, console) == 1
    text = console.export_text()
    assert "redis-default (redis-benchmark): 2 of 3 points ok" in text and "FAILED: redis-benchmark" in text
    assert "Traceback" not in text  # the error's first line only


def test_a_cell_is_the_value_and_its_interval() -> None:
    assert cell(pd.Series({"value": 0.0123456, "ci_low": 0.01, "ci_high": 0.015, "low_n": False})) == (
        "0.01235 [0.01, 0.015]")  # fmt: skip
    assert cell(pd.Series({"value": 2.5e7})) == "2.5e+07"


def test_the_command(tmp_path: Path) -> None:
    a = with_intervals(write_run(tmp_path / "a", {1: [100.0], 10: [1000.0]}), 20.0)
    b = with_intervals(write_run(tmp_path / "b", {1: [100.0], 10: [1300.0]}), 20.0)
    done = aibench("results", make_archive(a, tmp_path / "a.tar.gz"))
    assert done.returncode == 0, done.stderr
    assert "1000 [980, 1020]" in done.stdout and "…" not in done.stdout.split("\n")[0]
    compared = aibench("results", a, "--compare", b)
    assert compared.returncode == 0, compared.stderr
    assert "A = " in compared.stdout and "changed (point intervals)" in compared.stdout
    missing = aibench("results", a, "--experiment", "nope")
    assert missing.returncode == 2 and "no points of experiment nope" in missing.stderr
    assert "results" in aibench("--help").stdout
