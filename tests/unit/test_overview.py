"""An experiment's overview page (aibench.results.overview) and the node hardware it shows
(aibench.hardware): from a run's own records, with the stand-in nvidia-smi for GPUs (no GPU here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aibench.files import write_json
from aibench.hardware import gpus, node_hardware
from aibench.results.overview import commands, overview_html
from aibench.rundir import RunDir
from tests.unit.test_compare import with_intervals, write_run

ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "tests" / "standins"
A100 = {"cpu_model": "AMD EPYC 7452 32-Core Processor", "cpus_node": 128, "cpus_usable": 16,
        "memory_bytes": 512 * 2**30, "gpus": [{"name": "NVIDIA A100-SXM4-40GB", "memory_mib": 40960.0}] * 4,
        "kernel": "4.18"}  # fmt: skip


def test_the_node_hardware_is_read_from_the_node() -> None:
    found = node_hardware()
    assert found["cpus_usable"] == len(os.sched_getaffinity(0)) and found["cpus_node"] == os.cpu_count()
    assert found["memory_bytes"] > 2**30 and found["cpu_model"]
    assert isinstance(found["gpus"], list)  # nvidia-smi is not on this machine's PATH: none, not an error


def test_gpus_come_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{STANDINS}:{os.environ['PATH']}")
    assert gpus() == [{"name": "NVIDIA A100-SXM4-40GB", "memory_mib": 40960.0}] * 2  # the stand-in's two
    monkeypatch.setenv("NVIDIA_SMI_STANDIN_FAIL", "1")
    assert gpus().startswith("nvidia-smi exited 9: NVIDIA-SMI has failed")  # why, not "no GPU"


def a_run(tmp_path: Path) -> Path:
    results = with_intervals(write_run(tmp_path / "results", {1: [100.0], 10: [1000.0]}), 20.0)
    for summary_file in results.glob("*/points/*/summary.json"):
        summary = json.loads(summary_file.read_text())
        summary["provenance"]["hardware"] = {**A100, "gpus": []}
        write_json(summary_file, summary)
    config = RunDir(results).provenance / "config" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("experiments: [redis-default]\n")
    manifest = {
        "config": {"launcher": "slurm"}, "git": {"commit": "abc123", "dirty": False}, "hosts": ["mel2001"],
        "inputs": [{"path": "config/config.yaml", "copy": "provenance/config/config.yaml", "sha256": "x"},
                   {"path": "recipes/services/redis.yaml", "copy": "provenance/recipes/services/redis.yaml",
                    "sha256": "y"}],
        "software": {"aibench": "0.1.0", "python": "3.11.7", "tools": {"redis-server": "7.0.15 <b>"}},
        "services": [{"experiment": "redis-default", "kind": "redis", "image": "docker://redis:7.0",
                      "node": "mel2001", "slurm_job_id": "4242", "hardware": A100},
                     {"experiment": "other", "kind": "redis", "node": "mel9999"}],
    }  # fmt: skip
    write_json(RunDir(results).manifest, manifest)
    return results


def test_the_overview_shows_headlines_environment_and_commands(tmp_path: Path) -> None:
    results = a_run(tmp_path)
    page = overview_html(results, "redis-default")
    assert "redis-default: 2 of 2 points ok" in page
    assert "<td>1000 [980, 1020]</td>" in page  # the headline with its interval
    assert "<td>service (docker://redis:7.0)</td><td>mel2001, SLURM job 4242</td>" in page
    assert "AMD EPYC 7452 32-Core Processor" in page and "16 of 128" in page and "512.0 GiB" in page
    assert "4 x NVIDIA A100-SXM4-40GB" in page and "mel9999" not in page  # another experiment's node
    assert "<td>client</td><td>vm</td>" in page
    assert "7.0.15 &lt;b&gt;" in page  # every recorded text escaped
    manifest = json.loads(RunDir(results).manifest.read_text())
    (rerun,) = [line for line in commands(results, "redis-default", manifest) if line.startswith("snakemake")]
    provenance = RunDir(results).provenance.absolute()
    assert rerun.startswith("snakemake --profile profiles/meluxina --configfile ")
    assert f"{provenance}/config/config.yaml" in rerun and f"recipes={provenance}/recipes" in rerun
    assert "'experiments=[redis-default]'" in rerun
    assert "git checkout abc123" in page and f"make paper RUN={results.absolute()}" in page


def test_an_overview_of_a_run_without_hardware_records_says_so(tmp_path: Path) -> None:
    results = with_intervals(write_run(tmp_path / "results", {1: [100.0]}), 20.0)
    page = overview_html(results, "redis-default")
    assert "<td>client</td><td>vm</td><td>not recorded</td>" in page and "Regenerate" in page
