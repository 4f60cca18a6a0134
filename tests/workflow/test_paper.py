"""Paper tables and figures from the shipped archived run alone: no service starts, every derived file
can be deleted and comes back, the tables identical."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from aibench.archive import unpack
from aibench.errors import ConfigError
from tests.conftest import ROOT
from tests.workflow.test_local_workflow import snakemake_paper

SHIPPED = ROOT / "examples" / "local-run.tar.gz"
DIVISORS = {b"cpu_cores": b"per_core", b"gpu_count": b"per_gpu"}


def in_todays_formulas(table: bytes) -> bytes:
    """The shipped run's summary.csv (results schema 1.1) as today's aggregation writes it: the
    efficiency rows' formulas are ids (docs/metrics.md, "Runs before results schema 1.2"); the client's
    rows keep what the run recorded."""
    table = re.sub(rb"(mean|max) over window of (\w+)", rb"prometheus.window;series=\2", table)
    return re.sub(
        rb"(\w+)\(mean\)/mean\((cpu_cores|gpu_count)\)",
        lambda m: b"efficiency." + DIVISORS[m[2]] + b";throughput=" + m[1],
        table,
    )


def test_paper_from_the_shipped_run_alone(tmp_path: Path, no_leftovers: float) -> None:
    out = tmp_path / "paper"
    done = snakemake_paper(SHIPPED, out)
    assert done.returncode == 0, done.stderr[-3000:]
    tables = {p.relative_to(out): p.read_bytes() for p in sorted((out / "tables").iterdir())}
    figures = sorted(p.relative_to(out) for p in (out / "figures").rglob("*.pdf"))
    # the regenerated tidy table is the run's own, byte for byte but for the derived rows' formula ids
    archived = (out / "run" / "summary.csv").read_bytes()
    assert in_todays_formulas(archived) != archived
    assert tables[Path("tables/summary.csv")] == in_todays_formulas(archived)
    # the run's redis-benchmark median, recorded as p50, is the median of the paper's table
    assert b",latency median (ms)," in tables[Path("tables/redis-default.csv")].splitlines()[0] + b","
    experiments = {p.name for p in (out / "run").iterdir() if (p / "points").is_dir()}
    assert {Path(f"tables/{e}.tex") for e in experiments} <= set(tables)
    assert {f.parts[1] for f in figures} == experiments
    for derived in ("tables", "figures", "logs"):
        shutil.rmtree(out / derived)
    again = snakemake_paper(SHIPPED, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.relative_to(out): p.read_bytes() for p in sorted((out / "tables").iterdir())} == tables
    assert sorted(p.relative_to(out) for p in (out / "figures").rglob("*.pdf")) == figures


def test_shipped_run_holds_no_secret_and_a_manifest(tmp_path: Path) -> None:
    run = unpack(SHIPPED, tmp_path)
    manifest = (run / "manifest.json").read_text()
    assert '"commit"' in manifest and '"inputs"' in manifest
    assert not list(run.rglob("secrets.env")) and not list(run.rglob("*.my.cnf"))


def test_unpack_refuses_members_outside_the_target(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../escaped")
    with pytest.raises(ConfigError, match="not a usable run archive"):
        unpack(evil, tmp_path / "out")
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(ConfigError, match="not an aibench run archive"):
        with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
            tar.add(payload, arcname="run/other.txt")
        unpack(tmp_path / "other.tar.gz", tmp_path / "out2")


def test_paper_refuses_a_crafted_archive_before_writing_anything(tmp_path: Path) -> None:
    """Names in the archive become the paper's output paths: '../..' as an experiment is refused by the
    workflow itself, naming the member and the field, and nothing is written (issue 13, item 9)."""
    summary = {"experiment": "../../escaped", "point": "p1", "client": {"kind": "llm"}, "swept": {"rate": 1}}
    files = {
        "run/manifest.json": json.dumps({"points": []}).encode(),
        "run/exp-a/points/p1/summary.json": json.dumps(summary).encode(),
    }
    archive = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "nested" / "paper"
    done = snakemake_paper(archive, out)
    assert done.returncode != 0
    assert (
        f"{archive}: run/exp-a/points/p1/summary.json: field 'experiment': '../../escaped' "
        "is not a valid experiment name"
    ) in done.stderr
    assert not out.exists() or not any(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.tar.gz", "nested"]
