"""`aibench compare`: matching over repeats, the 95% CI noise call, archives, and the command."""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aibench.errors import AibenchError
from aibench.files import read_json, write_json
from aibench.recipes import point_id
from aibench.results.compare import compare, format_table, load_run, t_quantile_975
from tests.conftest import aibench

ROOT = Path(__file__).resolve().parents[2]
REDIS_BASE = {"data_size": 3, "keyspace": 100000, "pipeline": 1, "requests": 1000, "tests": "get,set"}


def _metric(name: str, stat: str, value: float, unit: str, formula: str) -> dict[str, Any]:
    return {
        "formula": formula,
        "labels": {"command": "SET"},
        "name": name,
        "stat": stat,
        "unit": unit,
        "value": value,
    }


def _summary(
    experiment: str,
    swept: dict[str, Any],
    repeat: int,
    throughput: float,
    status: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """A summary.json document in the real schema (as written by aibench.results.schema)."""
    return {
        "client": {
            "kind": "redis-benchmark",
            "recipe": "redis-benchmark",
            "tool": {
                "command": "redis-benchmark ...",
                "name": "redis-benchmark",
                "version": "redis-benchmark 7.0.15",
            },
        },
        "error": None if status == "ok" else "boom",
        "experiment": experiment,
        "metrics": [
            _metric("throughput", "mean", throughput, "ops/s", "redis-benchmark:rps"),
            _metric("latency", "mean", 1000 / throughput, "ms", "redis-benchmark:avg_latency_ms"),
            _metric("latency", "p99", 3000 / throughput, "ms", "redis-benchmark:p99_latency_ms"),
            _metric("latency", "min", 0.024, "ms", "redis-benchmark:min_latency_ms"),
        ],
        "params": {**params, **swept},
        "point": point_id(swept, repeat),
        "provenance": {
            "aibench_version": "0.1.0",
            "host": "vm",
            "platform": "Linux",
            "python": "3.11.7",
            "slurm_job_id": None,
            "written_at": 1795990273.08,
        },
        "repeat": repeat,
        "schema_version": "1.0",
        "service": {"endpoint": "127.0.0.1:46855", "kind": "redis", "recipe": "redis"},
        "status": status,
        "swept": swept,
        "window": {"duration_s": 5.7, "end": 1795990273.07, "start": 1795990267.35},
    }


def write_run(
    root: Path,
    series: dict[int, Sequence[float]],
    experiment: str = "redis-default",
    *,
    status: str = "ok",
    cpu_cores: float | None = None,
    params: dict[str, Any] | None = None,
) -> Path:
    """Points of ``experiment`` under ``root``: clients -> the throughput of each repeat."""
    for clients, values in series.items():
        for repeat, value in enumerate(values):
            summary = _summary(experiment, {"clients": clients}, repeat, value, status, params or REDIS_BASE)
            point_dir = root / experiment / "points" / summary["point"]
            write_json(point_dir / "summary.json", summary)
            if cpu_cores is not None:
                samples = [f"cpu_cores,{cpu_cores}", f"cpu_cores,{cpu_cores}"]
                (point_dir / "metrics.csv").write_text("series,value\n" + "\n".join(samples) + "\n")
    return root


def row(table: pd.DataFrame, metric: str = "throughput", stat: str = "mean", clients: str = "10") -> Any:
    hits = table[(table["metric"] == metric) & (table["stat"] == stat) & (table["param_clients"] == clients)]
    assert len(hits) == 1, hits
    return hits.iloc[0]


def run_pair(tmp_path: Path, a: dict[int, Sequence[float]], b: dict[int, Sequence[float]]) -> pd.DataFrame:
    return compare(load_run(write_run(tmp_path / "a", a)), load_run(write_run(tmp_path / "b", b)))


# --- the noise call ---------------------------------------------------------------------------------


def test_identical_runs_are_within_noise(tmp_path: Path) -> None:
    series = {1: [100.0, 104.0, 97.0], 10: [800.0, 790.0, 812.0]}
    table = run_pair(tmp_path, series, series)
    assert set(table["verdict"]) == {"within noise"}
    assert (table["rel_change"] == 0).all()
    assert (table["n_a"] == 3).all() and (table["n_b"] == 3).all()
    # throughput, latency mean, latency p99 per point; min is not a default stat
    assert len(table) == 2 * 3 and "min" not in set(table["stat"])


def test_a_30_percent_shift_with_tight_repeats_is_changed(tmp_path: Path) -> None:
    table = run_pair(tmp_path, {10: [1000.0, 1010.0, 990.0]}, {10: [1300.0, 1310.0, 1290.0]})
    throughput = row(table)
    assert throughput["verdict"] == "changed"
    assert throughput["rel_change"] == pytest.approx(0.30)
    assert throughput["value_a"] == pytest.approx(1000.0) and throughput["value_b"] == pytest.approx(1300.0)
    assert row(table, "latency", "p99")["verdict"] == "changed"
    text = format_table(table)
    changed = [line for line in text.splitlines() if "throughput" in line]
    assert changed[0].startswith("*") and "+30.0%" in changed[0]


def test_overlapping_noisy_repeats_are_within_noise(tmp_path: Path) -> None:
    table = run_pair(tmp_path, {10: [700.0, 1000.0, 1300.0]}, {10: [900.0, 1200.0, 1500.0]})
    throughput = row(table)
    assert throughput["rel_change"] == pytest.approx(0.20)
    assert throughput["verdict"] == "within noise"
    assert not any(line.startswith("*") for line in format_table(table).splitlines())


def test_confidence_interval_is_student_t_half_width(tmp_path: Path) -> None:
    table = run_pair(tmp_path, {10: [1.0, 2.0, 3.0]}, {10: [2.0, 2.0]})
    throughput = row(table)
    assert throughput["value_a"] == pytest.approx(2.0)
    assert throughput["ci_a"] == pytest.approx(4.303 * 1.0 / math.sqrt(3))  # s = 1, n = 3
    assert throughput["ci_b"] == pytest.approx(0.0)
    assert throughput["verdict"] == "within noise"


def test_verdict_flips_where_the_intervals_stop_overlapping(tmp_path: Path) -> None:
    # A: mean 10, s = 1, half-width 12.706 / sqrt(2) = 8.984; B constant (half-width 0)
    table = run_pair(tmp_path / "1", {10: [9.293, 10.707]}, {10: [19.0, 19.0]})
    assert row(table)["ci_a"] == pytest.approx(8.984, abs=1e-3)
    assert row(table)["verdict"] == "changed"  # 19.0 - 10 = 9.0 > 8.984
    table = run_pair(tmp_path / "2", {10: [9.293, 10.707]}, {10: [18.9, 18.9]})
    assert row(table)["verdict"] == "within noise"  # 8.9 < 8.984


def test_a_single_repeat_makes_no_claim(tmp_path: Path) -> None:
    table = run_pair(tmp_path, {10: [1000.0]}, {10: [2000.0, 2010.0, 1990.0]})
    throughput = row(table)
    assert throughput["verdict"] == "no interval"
    assert throughput["rel_change"] == pytest.approx(1.0)
    assert math.isnan(throughput["ci_a"]) and throughput["n_a"] == 1
    assert not any(line.startswith("*") for line in format_table(table).splitlines())


def with_intervals(root: Path, half: float) -> Path:
    """Every point's throughput given its own 95% interval, value ± ``half`` (as a point's per-request
    records give it, aibench.results.stats)."""
    for path in root.glob("*/points/*/summary.json"):
        summary = json.loads(path.read_text())
        for metric in summary["metrics"]:
            if metric["name"] == "throughput":
                value = metric["value"]
                metric.update(ci_low=value - half, ci_high=value + half, n=10, low_n=False)
        write_json(path, summary)
    return root


def test_single_repeats_are_judged_on_the_points_own_intervals(tmp_path: Path) -> None:
    """One repeat each: the points' own intervals make the call (basis stated), and the smallest change
    they could show is the sum of their half-widths relative to A."""
    def pair(name: str, b: float) -> pd.Series:
        a_run = with_intervals(write_run(tmp_path / name / "a", {10: [1000.0]}), 20.0)
        b_run = with_intervals(write_run(tmp_path / name / "b", {10: [b]}), 20.0)
        return row(compare(load_run(a_run), load_run(b_run)))

    apart, close = pair("apart", 1050.0), pair("close", 1030.0)
    assert (apart["verdict"], apart["basis"]) == ("changed", "point intervals")  # 1030 > 1020
    assert (close["verdict"], close["basis"]) == ("within noise", "point intervals")  # 1010 < 1020
    assert apart["detectable"] == pytest.approx(0.04) and (apart["low_a"], apart["high_a"]) == (980.0, 1020.0)
    # the latency rows carry no interval of their own (a tool's number): still no claim
    table = compare(load_run(tmp_path / "apart" / "a"), load_run(tmp_path / "apart" / "b"))
    p99 = row(table, "latency", "p99")
    assert (p99["verdict"], p99["basis"]) == ("no interval", "")
    text = format_table(table)
    line = next(line for line in text.splitlines() if "throughput" in line)
    assert line.startswith("*") and "[980, 1020]" in line and "4.0%" in line and "(point intervals)" in line


def test_repeats_show_their_spread_beside_the_points_own_intervals(tmp_path: Path) -> None:
    a = with_intervals(write_run(tmp_path / "a", {10: [1000.0, 1010.0, 990.0]}), 5.0)
    b = with_intervals(write_run(tmp_path / "b", {10: [1500.0]}), 30.0)
    throughput = row(compare(load_run(a), load_run(b)))
    assert throughput["within_a"] == pytest.approx(5.0)
    assert throughput["ci_a"] == pytest.approx(4.303 * 10 / 3**0.5)
    assert (throughput["verdict"], throughput["basis"]) == ("changed", "repeats (A), point interval (B)")
    text = format_table(compare(load_run(a), load_run(b)))
    assert "(n=3; within ±5.00)" in next(line for line in text.splitlines() if "throughput" in line)


def test_missing_experiment_or_point_is_only_in_one_run(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {10: [100.0, 101.0]})
    write_run(a, {4: [5.0, 5.1]}, experiment="redis-old")
    b = write_run(tmp_path / "b", {10: [100.0, 101.0], 50: [300.0, 301.0]})
    write_run(b, {4: [5.0, 5.1]}, experiment="redis-new")
    table = compare(load_run(a), load_run(b))
    verdicts = table.groupby("experiment")["verdict"].agg(set).to_dict()
    assert verdicts == {
        "redis-default": {"within noise", "only in B"},
        "redis-old": {"only in A"},
        "redis-new": {"only in B"},
    }
    assert set(table[table["param_clients"] == "50"]["verdict"]) == {"only in B"}
    only_a = table[table["verdict"] == "only in A"]
    assert (only_a["n_b"] == 0).all() and only_a["value_b"].isna().all() and only_a["rel_change"].isna().all()


def test_params_match_across_column_dtypes(tmp_path: Path) -> None:
    # In B another experiment lacks `clients`, so B's param_clients column is float with NaN: 10.0 == 10.
    a = write_run(tmp_path / "a", {10: [100.0, 101.0]})
    b = write_run(tmp_path / "b", {10: [100.0, 101.0]})
    write_run(b, {}, experiment="other")
    summary = _summary("other", {"concurrency": 2}, 0, 5.0, "ok", {"api": "x"})
    write_json(b / "other" / "points" / summary["point"] / "summary.json", summary)
    assert load_run(b)["param_clients"].isna().any()
    table = compare(load_run(a), load_run(b), experiments=["redis-default"])
    assert set(table["verdict"]) == {"within noise"}


def test_failed_points_do_not_count(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {10: [100.0, 101.0]})
    b = write_run(tmp_path / "b", {10: [100.0, 101.0]})
    failed = _summary("redis-default", {"clients": 10}, 2, 1.0, "failed", REDIS_BASE)
    write_json(b / "redis-default" / "points" / failed["point"] / "summary.json", failed)
    assert (load_run(b)["status"] == "failed").any()
    throughput = row(compare(load_run(a), load_run(b)))
    assert throughput["n_b"] == 2 and throughput["verdict"] == "within noise"


def test_filters_sources_stats_metrics_and_experiments(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {10: [100.0, 101.0]}, cpu_cores=0.5)
    b = write_run(tmp_path / "b", {10: [100.0, 101.0]}, cpu_cores=0.5)
    run_a, run_b = load_run(a), load_run(b)
    default = compare(run_a, run_b)
    assert set(default["source"]) == {"client", "derived"}  # throughput_per_core is derived
    assert row(default, "throughput_per_core")["value_a"] == pytest.approx(201.0)
    assert "prometheus" in set(compare(run_a, run_b, prometheus=True)["source"])
    assert "min" in set(compare(run_a, run_b, stats=None)["stat"])
    named = compare(run_a, run_b, metrics=["cpu_cores"])
    assert set(named["metric"]) == {"cpu_cores"} and set(named["source"]) == {"prometheus"}
    assert compare(run_a, run_b, experiments=["nope"]).empty
    assert "nothing to compare" in format_table(compare(run_a, run_b, experiments=["nope"]))


def test_an_older_runs_p50_is_todays_median(tmp_path: Path) -> None:
    """Runs before results schema 1.2 named redis-benchmark's median `p50` (docs/metrics.md): read as
    `median`, it matches today's median and is shown under that name."""
    for run, stat in (("a", "p50"), ("b", "median")):
        write_run(tmp_path / run, {10: [100.0, 101.0]})
        for path in (tmp_path / run).glob("*/points/*/summary.json"):
            summary = read_json(path)
            summary["metrics"].append(_metric("latency", stat, 5.0, "ms", "redis-benchmark:p50_latency_ms"))
            write_json(path, summary)
    table = compare(load_run(tmp_path / "a"), load_run(tmp_path / "b"))
    median = row(table, "latency", "median")
    assert (median["n_a"], median["n_b"], median["verdict"]) == (2, 2, "within noise")
    assert "p50" not in set(table["stat"])


def test_the_shipped_older_run_reads_in_todays_vocabulary() -> None:
    """examples/local-run.tar.gz was made under results schema 1.1 (redis-benchmark's median as `p50`)."""
    shipped = load_run(ROOT / "examples" / "local-run.tar.gz")
    assert "p50" not in set(shipped["stat"])
    table = compare(shipped, shipped)
    redis = table[(table["experiment"] == "redis-default") & (table["metric"] == "latency")]
    assert set(redis["stat"]) == {"mean", "median", "p99"} and set(redis["verdict"]) == {"no interval"}


def test_zero_baseline_has_no_relative_change(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {10: [100.0, 101.0]})
    b = write_run(tmp_path / "b", {10: [100.0, 101.0]})
    run_a, run_b = load_run(a), load_run(b)
    run_a.loc[run_a["metric"] == "throughput", "value"] = 0.0
    assert math.isnan(row(compare(run_a, run_b))["rel_change"])


# --- t quantiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)])
def test_t_quantile_known_values(df: int, expected: float) -> None:
    assert t_quantile_975(df) == pytest.approx(expected, abs=5e-4)


def _t_cdf(x: float, df: int, steps: int = 20000) -> float:
    """P(T <= x) by Simpson's rule on the Student-t density (x > 0)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    h = x / steps
    total = 0.0
    for i in range(steps + 1):
        weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
        total += weight * math.exp(log_c - (df + 1) / 2 * math.log1p((i * h) ** 2 / df))
    return 0.5 + total * h / 3


@pytest.mark.parametrize("df", [*range(1, 31), 31, 40, 60, 120, 1000])
def test_t_quantile_is_the_975_point_of_the_distribution(df: int) -> None:
    # the table is the exact quantile rounded to 3 decimals; the expansion beyond is within 1e-4
    t, tolerance = t_quantile_975(df), 5e-4 if df <= 30 else 1e-4
    assert _t_cdf(t - tolerance, df) < 0.975 < _t_cdf(t + tolerance, df)


def test_t_quantile_large_df_tends_to_normal_and_rejects_zero() -> None:
    assert t_quantile_975(60) == pytest.approx(2.000, abs=5e-4)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=5e-4)
    assert t_quantile_975(10**6) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)


# --- archives ---------------------------------------------------------------------------------------


def make_archive(results: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(results, arcname="run")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return target


def test_archive_loads_like_the_directory(tmp_path: Path) -> None:
    results = write_run(tmp_path / "results", {1: [10.0, 11.0], 10: [100.0, 101.0]}, cpu_cores=0.5)
    write_json(results / "manifest.json", {"experiments": ["redis-default"]})
    archive = make_archive(results, tmp_path / "run.tar.gz")
    from_dir, from_archive = load_run(results), load_run(archive)
    assert len(from_archive) == len(from_dir) > 0
    pd.testing.assert_frame_equal(from_archive, from_dir)
    table = compare(from_dir, from_archive)
    assert set(table["verdict"]) == {"within noise"}


@pytest.mark.parametrize("member", ["../evil", "run/../../evil", "/tmp/aibench-evil-abs"])
def test_unsafe_archive_member_is_refused(tmp_path: Path, member: str) -> None:
    results = write_run(tmp_path / "work" / "results", {10: [100.0]})
    archive = make_archive(results, tmp_path / "work" / "bad.tar.gz", {member: b"pwned"})
    with pytest.raises(AibenchError, match=r"unsafe archive member .*refused"):
        load_run(archive)
    assert not (tmp_path / "work" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/aibench-evil-abs").exists()


def test_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AibenchError, match="no such"):
        load_run(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AibenchError, match="neither a results directory nor a tar archive"):
        load_run(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AibenchError, match="no points"):
        load_run(tmp_path / "empty")


# --- the command ------------------------------------------------------------------------------------



def test_cli_end_to_end(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {1: [100.0, 100.5, 99.5], 10: [1000.0, 1010.0, 990.0]})
    b = write_run(tmp_path / "b", {1: [100.0, 101.0, 99.0], 10: [1300.0, 1310.0, 1290.0]})
    archive_b = make_archive(b, tmp_path / "b.tar.gz")
    out = tmp_path / "cmp.csv"
    done = aibench("compare", a, archive_b, "--csv", out)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "experiment" in line)
    for column in ("params", "metric", "stat", "A", "B", "change", "verdict"):
        assert column in header.split()
    starred = [line for line in lines if line.startswith("*")]
    assert len(starred) == 3  # throughput, latency mean and p99 at clients=10
    assert all("clients=10" in line and "changed" in line for line in starred)
    assert any("throughput{command=SET}" in line and "+30.0%" in line for line in starred)
    table = pd.read_csv(out)
    assert set(table["verdict"]) == {"changed", "within noise"} and len(table) == 6

    done = aibench("compare", a, b, "--metric", "throughput", "--all-stats", "--experiment", "redis-default")
    assert done.returncode == 0, done.stderr
    assert "latency" not in done.stdout and done.stdout.count("throughput{command=SET}") == 2


def test_cli_reports_a_bad_run(tmp_path: Path) -> None:
    done = aibench("compare", tmp_path / "nope", tmp_path / "nope2")
    assert done.returncode == 2
    assert "aibench compare:" in done.stderr and "no such results directory" in done.stderr
