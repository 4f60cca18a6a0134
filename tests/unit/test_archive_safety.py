"""A run archive is not trusted (issue 13, item 9): the names in it become the paper's paths, so each is
checked as a recipe's name would be; only regular files and directories are unpacked, within a size and
member cap, into a fresh directory moved into place once whole; an unpacked run is reused only for the
archive it came from. Every archive here is crafted in the test."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aibench.archive import MAX_BYTES, extract, unpack
from aibench.errors import ConfigError
from aibench.paper import open_run


def summary(experiment: str, point: str, swept: Any = None, kind: str = "redis-benchmark") -> bytes:
    document = {
        "experiment": experiment,
        "point": point,
        "client": {"kind": kind},
        "swept": {"clients": 1} if swept is None else swept,
    }
    return json.dumps(document).encode()


def manifest(*points: tuple[str, str]) -> bytes:
    return json.dumps({"points": [{"experiment": e, "point": p} for e, p in points]}).encode()


def a_run(experiment: str = "exp-a", points: tuple[str, ...] = ("p1",)) -> dict[str, bytes]:
    files = {"run/manifest.json": manifest(*((experiment, p) for p in points))}
    for p in points:
        files[f"run/{experiment}/points/{p}/summary.json"] = summary(experiment, p)
    return files


def build(path: Path, files: dict[str, bytes], extra: Sequence[tarfile.TarInfo] = ()) -> Path:
    """A gzipped tar of ``files`` (name -> content, in this order), then the ``extra`` members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def nothing_in(work: Path) -> bool:
    """Nothing was left at ``work``: no run, no partial directory."""
    return not work.exists() or not any(work.iterdir())


# --- names --------------------------------------------------------------------------------------------


def test_dotdot_experiment_in_the_manifest_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    files = a_run()
    files["run/manifest.json"] = manifest(("exp-a", "p1"), ("../x", "p1"))
    archive = build(tmp_path / "evil.tar.gz", files)
    expected = f"{archive}: run/manifest.json: field 'points[1].experiment': '../x' is not a valid experiment"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


def test_dotdot_point_in_the_manifest_is_refused(tmp_path: Path) -> None:
    files = a_run()
    files["run/manifest.json"] = manifest(("exp-a", "../../../etc"))
    archive = build(tmp_path / "evil.tar.gz", files)
    expected = "field 'points[0].point': '../../../etc' is not a valid point name"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


@pytest.mark.parametrize("name", ["../../x", "..", "exp/../../x", "monitoring"])
def test_bad_experiment_in_a_summary_is_refused(tmp_path: Path, name: str) -> None:
    files = a_run()
    files["run/exp-a/points/p1/summary.json"] = summary(name, "p1")
    archive = build(tmp_path / "evil.tar.gz", files)
    expected = f"{archive}: run/exp-a/points/p1/summary.json: field 'experiment': {name!r}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


def test_summary_naming_another_experiment_than_its_directory_is_refused(tmp_path: Path) -> None:
    files = a_run()
    files["run/exp-a/points/p1/summary.json"] = summary("exp-b", "p1")
    archive = build(tmp_path / "odd.tar.gz", files)
    with pytest.raises(ConfigError, match="field 'experiment': 'exp-b' is not the name of its directory"):
        open_run(archive, tmp_path / "work")


def a_swept_run() -> dict[str, bytes]:
    """A run whose experiment has a service sweep: each deployment's points under <experiment>/<id>/."""
    files = {"run/manifest.json": manifest(("exp-a", "p1"))}
    for deployment in ("io_threads-1", "io_threads-2"):
        document = json.loads(summary("exp-a", "p1"))
        files[f"run/exp-a/{deployment}/points/p1/summary.json"] = json.dumps(
            {**document, "deployment": deployment}
        ).encode()
    return files


def test_a_service_sweeps_points_are_read_per_deployment(tmp_path: Path) -> None:
    run = open_run(build(tmp_path / "swept.tar.gz", a_swept_run()), tmp_path / "work")
    assert sorted(run.experiments["exp-a"].points) == ["io_threads-1/p1", "io_threads-2/p1"]


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [("../../x", "field 'deployment': '../../x' is not a valid point name"),
     ("io_threads-9", "field 'deployment': 'io_threads-9' is not the name of its directory, 'io_threads-1'")],
)  # fmt: skip
def test_a_bad_deployment_in_a_summary_is_refused(tmp_path: Path, deployment: str, expected: str) -> None:
    files = a_swept_run()
    name = "run/exp-a/io_threads-1/points/p1/summary.json"
    files[name] = json.dumps({**json.loads(files[name]), "deployment": deployment}).encode()
    archive = build(tmp_path / "evil.tar.gz", files)
    with pytest.raises(ConfigError, match=re.escape(f"{name.removeprefix('run/')}: {expected}")):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


@pytest.mark.parametrize("param", ["a|b", "x/y", "../up", "c.*", "(a)"])
def test_swept_parameter_with_a_regex_metacharacter_or_slash_is_refused(tmp_path: Path, param: str) -> None:
    files = a_run()
    files["run/exp-a/points/p1/summary.json"] = summary("exp-a", "p1", swept={param: 1})
    archive = build(tmp_path / "evil.tar.gz", files)
    expected = f"run/exp-a/points/p1/summary.json: field 'swept': {param!r} is not a valid parameter name"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


def test_a_results_directory_is_checked_alike(tmp_path: Path) -> None:
    results = tmp_path / "results"
    files = a_run()
    files["run/manifest.json"] = manifest(("../x", "p1"))
    for name, data in files.items():
        path = results / name.removeprefix("run/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    expected = f"{results}: manifest.json: field 'points[0].experiment': '../x' is not a valid experiment"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(results, tmp_path / "work")


def test_names_colliding_with_the_papers_own_outputs_are_refused(tmp_path: Path) -> None:
    archive = build(tmp_path / "summary.tar.gz", a_run("summary"))
    expected = "'summary' would name the paper's table tables/summary.csv"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")
    files = a_run()
    files["run/exp-a/points/p1/summary.json"] = summary("exp-a", "p1", swept={"resources": 1})
    expected = "'resources' would name the figure figures/exp-a/resources.pdf"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(build(tmp_path / "resources.tar.gz", files), tmp_path / "work2")
    assert nothing_in(tmp_path / "work2")


def test_wildcard_patterns_escape_the_names(tmp_path: Path) -> None:
    files = a_run("llm.rate")
    files["run/llm.rate/points/p1/summary.json"] = summary("llm.rate", "p1", swept={"rate": 1})
    run = open_run(build(tmp_path / "dots.tar.gz", files), tmp_path / "work")
    assert re.fullmatch(run.experiment_pattern(), "llm.rate")
    assert re.fullmatch(run.experiment_pattern(), "llmxrate") is None  # '.' is no wildcard
    assert re.fullmatch(run.parameter_pattern(), "rate")


# --- members --------------------------------------------------------------------------------------------


def link(kind: bytes, name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        link(tarfile.SYMTYPE, "run/exp-a/points/p1/raw.csv.gz", "summary.json"),  # inside: "data" lets it by
        link(tarfile.LNKTYPE, "run/exp-a/points/p1/metrics.csv", "run/exp-a/points/p1/summary.json"),
        link(tarfile.FIFOTYPE, "run/exp-a/points/p1/client.log", ""),
    ],
    ids=["symlink", "hardlink", "fifo"],
)
def test_links_and_special_files_are_refused_before_anything_is_extracted(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    archive = build(tmp_path / "links.tar.gz", a_run(), [member])
    with pytest.raises(ConfigError, match="only regular files and directories are unpacked"):
        unpack(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")
    with pytest.raises(ConfigError, match=re.escape(repr(member.name))):
        extract(archive, tmp_path / "dest")
    assert nothing_in(tmp_path / "dest")  # not even the regular members before it


def test_over_size_archive_is_refused_before_anything_is_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = a_run()
    files["run/exp-a/points/p1/raw.csv.gz"] = b"x" * 2000
    archive = build(tmp_path / "big.tar.gz", files)
    monkeypatch.setenv("AIBENCH_ARCHIVE_MAX_BYTES", "1000")
    with pytest.raises(ConfigError, match="more than 1000 bytes"):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")
    with pytest.raises(ConfigError, match="more than 1000 bytes"):
        extract(archive, tmp_path / "dest")
    assert nothing_in(tmp_path / "dest")
    monkeypatch.delenv("AIBENCH_ARCHIVE_MAX_BYTES")
    assert open_run(archive, tmp_path / "work").experiments.keys() == {"exp-a"}  # under the default cap


def test_the_default_cap_reads_declared_sizes_not_data(tmp_path: Path) -> None:
    # a header alone declaring a file over 2 GiB: refused on the header, nothing written, no GB read
    info = tarfile.TarInfo("run/exp-a/points/p1/raw.csv.gz")
    info.size = MAX_BYTES + 1
    archive = tmp_path / "huge.tar"
    archive.write_bytes(info.tobuf(tarfile.PAX_FORMAT))
    with pytest.raises(ConfigError, match=f"more than {MAX_BYTES} bytes"):
        unpack(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = build(tmp_path / "many.tar.gz", a_run(points=("p1", "p2", "p3")))  # 4 members
    monkeypatch.setenv("AIBENCH_ARCHIVE_MAX_MEMBERS", "3")
    with pytest.raises(ConfigError, match="more than 3 members"):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")
    with pytest.raises(ConfigError, match="more than 2 members"):
        extract(archive, tmp_path / "dest", max_members=2)
    assert nothing_in(tmp_path / "dest")


# --- partial and stale unpacked runs ----------------------------------------------------------------


def test_truncated_archive_leaves_no_run_a_later_make_paper_would_reuse(tmp_path: Path) -> None:
    files = a_run(points=("p1", "p2"))
    files["run/exp-a/points/p2/raw.csv.gz"] = os.urandom(256 * 1024)  # incompressible: cut through it
    whole = build(tmp_path / "whole.tar.gz", files).read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2])
    work = tmp_path / "work"
    for _ in range(2):  # the second time finds nothing of the first attempt to reuse
        with pytest.raises(ConfigError, match="not a usable run archive"):
            open_run(archive, work)
        assert nothing_in(work)
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ConfigError, match="not a usable run archive"):
        open_run(archive, work)
    assert nothing_in(work)


def test_a_partial_run_left_by_an_earlier_unpack_is_not_reused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "run" / "stale" / "points" / "p1").mkdir(parents=True)  # as an interrupted extraction left it
    (work / "run" / "manifest.json").write_bytes(manifest())
    run = open_run(build(tmp_path / "a.tar.gz", a_run()), work)
    assert run.experiments.keys() == {"exp-a"}
    assert not (work / "run" / "stale").exists()


def test_a_second_archive_at_the_same_workdir_is_unpacked_anew(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = build(tmp_path / "a.tar.gz", a_run("exp-a"))
    second = build(tmp_path / "b.tar.gz", a_run("exp-b"))
    assert open_run(first, work).experiments.keys() == {"exp-a"}
    (work / "run" / "sentinel").write_text("kept while the same archive is reused")
    assert open_run(first, work).experiments.keys() == {"exp-a"}
    assert (work / "run" / "sentinel").is_file()
    run = open_run(second, work)
    assert run.experiments.keys() == {"exp-b"}
    assert not (work / "run" / "exp-a").exists() and not (work / "run" / "sentinel").exists()
    assert sorted(p.name for p in work.iterdir()) == ["run"]  # no staging directory left beside it
    # same name, other content: the archive's sha256 decides, not its path
    build(first, a_run("exp-c"))
    assert open_run(first, work).experiments.keys() == {"exp-c"}


def test_a_client_kind_this_version_does_not_know_is_refused_naming_the_field(tmp_path: Path) -> None:
    """Its figures and tables are the kind's presentation: an unknown kind cannot be drawn."""
    files = a_run()
    files["run/exp-a/points/p1/summary.json"] = summary("exp-a", "p1", kind="vector-v2")
    archive = build(tmp_path / "newer.tar.gz", files)
    expected = (
        f"{archive}: run/exp-a/points/p1/summary.json: field 'client.kind': 'vector-v2' is not a client kind"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_run(archive, tmp_path / "work")
    assert nothing_in(tmp_path / "work")


def test_an_experiment_mixing_client_kinds_is_refused(tmp_path: Path) -> None:
    files = a_run(points=("p1", "p2"))
    files["run/exp-a/points/p2/summary.json"] = summary("exp-a", "p2", kind="llm")
    with pytest.raises(
        ConfigError, match=r"field 'client.kind': 'llm', but other points of experiment 'exp-a'"
    ):
        open_run(build(tmp_path / "mixed.tar.gz", files), tmp_path / "work")


def test_compare_names_the_file_of_a_broken_summary(tmp_path: Path) -> None:
    from aibench.results.compare import load_run

    point = tmp_path / "run" / "exp-a" / "points" / "p1"
    point.mkdir(parents=True)
    (point / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"run: exp-a/points/p1/summary.json: not readable JSON"):
        load_run(tmp_path / "run")
