"""aibench.rundir is the one place that knows the results layout: its paths, its bookkeeping, and no file
name of the layout written as a path literal anywhere else (library, scripts, bench, rules, Snakefile)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path, PurePosixPath

import pytest

from aibench import lifecycle
from aibench.archive import members
from aibench.names import name_problem
from aibench.rundir import PointDir, RunDir, ServiceDir, is_record

ROOT = Path(__file__).resolve().parents[2]
#: where the layout's names may not appear as literals (rundir.py itself excepted)
SEARCHED = ["aibench", "scripts", "bench", "rules", "Snakefile", "paper/Snakefile"]
#: the layout's file names: a string literal naming one as a path (alone, or as a component of a path
#: or pattern) is refused
FILE_NAMES = {
    ServiceDir.SPEC, ServiceDir.HANDLE, ServiceDir.ENDPOINT, ServiceDir.READY, ServiceDir.STOPPED,
    ServiceDir.PREPARED, ServiceDir.SECRETS, ServiceDir.LOG, ServiceDir.HEARTBEAT, ServiceDir.NODE_READY,
    "service.pid", "service.sbatch", "deploy.log", "wait.log", "stop.log", "prepare.log", "service.env",
    PointDir.SUMMARY, PointDir.RAW, PointDir.METRICS, PointDir.SUPERSEDED_NOTE, "client.log", "scrape.log",
    "summary.csv", "manifest.json",
}  # fmt: skip
#: the layout's own directory names: refused as a component of a path literal or as an operand of `/`
DIR_NAMES = {"attempts", "replaced", "points", "service", "provenance"}
#: names the layout shares with URLs, images and schema names (kinds/grafana, /api/v1/targets): refused
#: as an operand of `/`, or as a component of a path built on a variable (f"{RESULTS}/figures/...")
SHARED_DIR_NAMES = {"data", "logs", "monitoring", "grafana", "targets", "figures"}
#: the project's own folders that share a name with the layout's (its data/, its monitoring/grafana/
#: dashboards, the image cache's logs/): not a run's
PROJECT_TREE = {
    "aibench/paths.py": {"data"},
    "aibench/datasets/corpus_extract.py": {"data"},
    "aibench/datasets/embed_corpus.py": {"data"},
    "aibench/monitoring/dashboards.py": {"monitoring", "grafana"},
    "aibench/standin_images.py": {"logs"},
    "rules/datasets.smk": {"data", "logs"},
    # the paper workflow's own output folder (tables/summary.csv, figures/, logs/), not a run's
    "paper/Snakefile": {"figures", "logs", "summary.csv"},
}
#: files the presentation pass owns and has not moved to rundir yet (see the refactor's report); each
#: entry is the literal still allowed there
PENDING: dict[str, set[str]] = {}


def searched_files() -> list[Path]:
    files: list[Path] = []
    for entry in SEARCHED:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted([*path.rglob("*.py"), *path.rglob("*.smk")])
    return [f for f in files if f.name != "rundir.py" or f.parent.name != "aibench"]


def string_body(token: str) -> str | None:
    """The text of a one-line string literal (prefix and quotes removed); None for a triple-quoted one
    (a docstring: prose may name files)."""
    match = re.match(r"(?i)^[rbuf]*('|\")", token)
    if match is None or token[match.end() - 1 :].startswith(match.group(1) * 3):
        return None
    return token[match.end() : -1]


def path_literals(source: str) -> list[tuple[int, str, bool]]:
    """(line, body, operand of `/`) of every one-line string literal of a Python or Snakemake file."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]  # fmt: skip
    out = []
    for i, tok in enumerate(tokens):
        body = string_body(tok.string) if tok.type == tokenize.STRING else None
        if body is None:
            continue
        near = [tokens[j].string for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
        out.append((tok.start[0], body, "/" in near))
    return out


def offences(body: str, joined: bool) -> set[str]:
    components = set(body.split("/")) if "/" in body else set()
    on_a_variable = components if body.startswith("{") else set()
    found = {name for name in FILE_NAMES if name == body or name in components}
    found |= {name for name in DIR_NAMES if name in components or (joined and body == name)}
    found |= {name for name in SHARED_DIR_NAMES if name in on_a_variable or (joined and body == name)}
    return found


def test_no_layout_name_is_a_literal_outside_rundir() -> None:
    found = []
    for path in searched_files():
        relative = path.relative_to(ROOT).as_posix()
        allowed = PROJECT_TREE.get(relative, set()) | PENDING.get(relative, set())
        for line, body, joined in path_literals(path.read_text()):
            for name in sorted(offences(body, joined) - allowed):
                found.append(f"{relative}:{line}: {name!r} in {body!r}")
    assert not found, "layout names outside aibench/rundir.py (take the path from it):\n" + "\n".join(found)


def test_the_grep_finds_what_it_is_meant_to() -> None:
    source = (
        'a = d / "handle.json"\nb = f"{R}/{{experiment}}/points/{{point}}/raw.csv.gz"\n'
        'c = x / "attempts"\nd = "*/service"\ne = body["data"]\nf = "no handle.json here"\n'
        'g = """a docstring naming results/x/service/spec.json"""\n'
        'h = f"{RESULTS}/monitoring"\ni = root / "grafana"\nj = "docker://grafana/grafana:11"\n'
    )
    hits = {line: offences(body, joined) for line, body, joined in path_literals(source)}
    assert hits == {1: {"handle.json"}, 2: {"raw.csv.gz", "points"}, 3: {"attempts"}, 4: {"service"},
                    5: set(), 6: set(), 8: {"monitoring"}, 9: {"grafana"}, 10: set()}  # fmt: skip


def test_paths_and_patterns(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.service("exp").handle == tmp_path / "exp" / "service" / "handle.json"
    assert str(RunDir("results").service("{experiment}").ready) == "results/{experiment}/service/ready.json"
    point = run.point("{experiment}", "{point}")
    assert str(point.summary).endswith("{experiment}/points/{point}/summary.json")
    assert run.monitoring.path == tmp_path / "monitoring"
    assert run.targets == tmp_path / "monitoring" / "targets"
    assert run.figure("e", "clients", "png") == tmp_path / "figures" / "e" / "clients.png"
    assert run.log("aggregate") == tmp_path / "logs" / "aggregate.log"
    grafana = run.grafana
    assert ServiceDir.of(grafana) is grafana and ServiceDir.of(tmp_path) == ServiceDir(tmp_path)


def test_reserved_names_are_the_runs_own_entries() -> None:
    for entry in ("monitoring", "grafana", "figures", "logs", "provenance", "paper"):
        assert entry in RunDir.ENTRIES and name_problem("experiment", entry) is not None
    assert name_problem("experiment", "redis-default") is None


def test_service_dirs_monitoring_first(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for d in (run.service("b").path, run.service("a").path, run.grafana.path, run.monitoring.path):
        d.mkdir(parents=True)
    assert [d.path for d in run.service_dirs()] == [
        run.monitoring.path, run.grafana.path, run.service("a").path, run.service("b").path
    ]


def test_a_service_sweeps_deployments_nest_in_their_experiment(tmp_path: Path) -> None:
    """Each deployment of a service sweep: <experiment>/<id>/service and its own points/, found by
    every walk over the run (service_dirs, measured_points), its stop superseding its points only."""
    run = RunDir(tmp_path)
    for unit in ("plain", "sweep/io_threads-1", "sweep/io_threads-2"):
        run.service(unit).path.mkdir(parents=True)
        measured(run.point(unit, "clients-1_r0"))
    assert run.service("sweep/io_threads-2").path == tmp_path / "sweep" / "io_threads-2" / "service"
    assert [d.path.relative_to(tmp_path).as_posix() for d in run.service_dirs()] == [
        "plain/service", "sweep/io_threads-1/service", "sweep/io_threads-2/service"
    ]
    assert [p.path.relative_to(tmp_path).as_posix() for p in run.measured_points()] == [
        "plain/points/clients-1_r0", "sweep/io_threads-1/points/clients-1_r0",
        "sweep/io_threads-2/points/clients-1_r0",
    ]  # fmt: skip
    replica = run.service("sweep/io_threads-2", 1)
    assert replica.path == tmp_path / "sweep" / "io_threads-2" / "service-r1"
    replica.path.mkdir()
    assert replica in run.service_dirs()
    # `aibench status` and `aibench stop --experiment` tell them apart by experiment and deployment
    assert [run.where(d) for d in run.service_dirs()] == [
        ("plain", ""), ("sweep", "io_threads-1"), ("sweep", "io_threads-2"),
        ("sweep", "io_threads-2/service-r1"),
    ]  # fmt: skip
    run.monitoring.path.mkdir()
    assert run.where(run.monitoring) == ("monitoring", "")
    assert replica.experiment_points == run.service("sweep/io_threads-2").experiment_points
    kept = run.service("sweep/io_threads-1").supersede_points()
    kept_paths = [k.relative_to(tmp_path).as_posix() for k in kept]
    assert kept_paths == ["sweep/io_threads-1/points/clients-1_r0/attempts/1"]
    assert not run.point("sweep/io_threads-2", "clients-1_r0").attempts.exists()


def measured(point: PointDir, status: str = "ok") -> None:
    point.path.mkdir(parents=True, exist_ok=True)
    point.raw.write_bytes(b"raw")
    point.summary.write_text(f'{{"status": "{status}"}}\n')


def test_attempts_keep_a_points_records(tmp_path: Path) -> None:
    point = RunDir(tmp_path).point("exp", "p1")
    measured(point, "failed")
    first = point.keep_attempt()
    assert first == point.attempts / "1" and (first / "summary.json").read_text() == '{"status": "failed"}\n'
    assert (first / "raw.csv.gz").read_bytes() == b"raw" and not (first / "metrics.csv").exists()
    assert point.keep_attempt() == point.attempts / "2"


def test_an_ended_deployment_supersedes_its_points_and_is_forgotten(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    service = run.service("exp")
    service.path.mkdir(parents=True)
    for live in (service.handle, service.ready, service.prepared, service.stopped):
        live.write_text("{}\n")
    for name in ("p1", "p2"):
        measured(run.point("exp", name))
    assert lifecycle.forget(service)  # it had been ready
    assert not any(f.exists() for f in (service.handle, service.ready, service.prepared))
    assert service.stopped.exists()  # the record of how it ended stays
    kept = service.supersede_points()
    assert [k.relative_to(tmp_path).as_posix() for k in kept] == ["exp/points/p1/attempts/1",
                                                                   "exp/points/p2/attempts/1"]  # fmt: skip
    assert all((k / "superseded.txt").is_file() for k in kept)
    assert not lifecycle.forget(service)
    assert run.monitoring.supersede_points() == []  # no points beside the run's Prometheus


def test_retired_state_is_discarded(tmp_path: Path) -> None:
    service = ServiceDir(tmp_path / "svc")
    service.data.mkdir(parents=True)
    moved = service.retire_state()
    assert moved is not None and (moved / "data").is_dir() and not service.data.exists()
    assert service.discard_retired() == service.replaced and not service.replaced.exists()
    assert service.discard_retired() is None


@pytest.mark.parametrize(
    ("relative", "kept"),
    [("manifest.json", True), ("summary.csv", True), ("provenance/recipes/x.yaml", True),
     ("e/points/p/summary.json", True), ("e/points/p/client.log", True),
     ("e/points/p/attempts/1/raw.csv.gz", True),
     ("e/service/spec.json", True), ("e/service/deploy.log", True), ("monitoring/endpoint.json", True),
     ("e/service/secrets.env", False), ("e/service/data/dump.rdb", False), ("monitoring/data/x", False),
     ("figures/e/clients.png", False), ("e/service/redis.conf", False), ("report.html", False),
     ("e/io_threads-2/points/p/summary.json", True), ("e/io_threads-2/points/p/attempts/1/raw.csv.gz", True),
     ("e/io_threads-2/service/stopped.json", True), ("e/io_threads-2/service/stop.log", True),
     ("e/io_threads-2/service/secrets.env", False), ("e/io_threads-2/service/data/dump.rdb", False),
     ("e/service-r1/stopped.json", True), ("e/d-1/service-r0/spec.json", True),
     ("e/service-r1/secrets.env", False), ("e/service-rx/spec.json", False)],
)  # fmt: skip
def test_which_files_are_records(relative: str, kept: bool) -> None:
    assert is_record(PurePosixPath(relative)) is kept


def test_archive_members_are_the_records(tmp_path: Path) -> None:
    for relative in ("manifest.json", "e/points/p/summary.json", "e/service/data/db", "e/service/spec.json"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    assert [m.relative_to(tmp_path).as_posix() for m in members(tmp_path)] == [
        "e/points/p/summary.json", "e/service/spec.json", "manifest.json"
    ]
