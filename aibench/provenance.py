"""results/manifest.json: everything needed to say later how a run's numbers were made.

Git commit and dirty flag; copies and sha256 of the config files and of every recipe the run used
(in the run's provenance directory); versions of Snakemake, the SLURM plugin, aibench and key packages and of
the load and server tools; hosts and nodes; SLURM job ids and partitions of service jobs and client
allocations; container images (and SIF sha256 where a SIF was used); model names and file digests;
start and end times. It holds no secret: secrets live only in 0600 files, which it never reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from aibench import RESULTS_SCHEMA_VERSION, __version__
from aibench.contracts import Endpoint, JobSpec
from aibench.files import read_json, sha256_file
from aibench.paths import PROJECT_ROOT
from aibench.records import RecordError
from aibench.rundir import PointDir, RunDir, ServiceDir

PACKAGES = ("snakemake", "snakemake-executor-plugin-slurm", "numpy", "pandas", "matplotlib", "aiohttp",
            "chromadb", "xllamacpp", "pymysql", "redis", "prometheus-client", "requests")  # fmt: skip
#: tool -> argv printing its version
TOOLS = {
    "redis-server": ["redis-server", "--version"],
    "redis-benchmark": ["redis-benchmark", "--version"],
    "sysbench": ["sysbench", "--version"],
    "mariadbd": ["mariadbd", "--version"],
    "prometheus": ["prometheus", "--version"],
    "apptainer": ["apptainer", "--version"],
    "sbatch": ["sbatch", "--version"],
}


@cache
def sha256(path: Path) -> str:
    """A file's sha256, computed once per run of the process (inputs are hashed for several records)."""
    return sha256_file(path)


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=cwd, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    commit = _run(["git", "rev-parse", "HEAD"], root)
    if commit is None:
        return {"commit": None, "dirty": None, "note": "not a git checkout"}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], root) or ""
    return {"commit": commit, "dirty": bool(status), "changed_files": status.splitlines()[:50],
            "branch": _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], root)}  # fmt: skip


def software() -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    tools = {}
    for name, argv in TOOLS.items():
        if shutil.which(argv[0]) and (out := _run(argv)):
            tools[name] = out.splitlines()[0][:200]
    import platform

    return {"aibench": __version__, "python": platform.python_version(), "packages": packages, "tools": tools}


def _input_name(source: Path) -> Path:
    """Where an input's copy goes: its path in the project, from its `recipes/` folder on, or external/."""
    if source.is_relative_to(PROJECT_ROOT):
        return source.relative_to(PROJECT_ROOT)
    parts = source.parts
    if "recipes" in parts[:-1]:
        return Path(*parts[len(parts) - 1 - parts[::-1].index("recipes") :])
    return Path("external") / source.parent.name / source.name


def copy_inputs(files: list[Path], run: RunDir) -> list[dict[str, str]]:
    """Copies of the run's config and recipe files under its provenance directory, with their sha256."""
    out = []
    for source in files:
        source = source.absolute()
        relative = _input_name(source)
        target = run.provenance / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        out.append(
            {"path": str(relative), "copy": str(target.relative_to(run.root)), "sha256": sha256(source)}
        )
    return out


def _partition(service_dir: ServiceDir) -> str | None:
    if not service_dir.job_script.is_file():
        return None
    match = re.search(r"^#SBATCH --partition=(\S+)", service_dir.job_script.read_text(), re.MULTILINE)
    return match[1] if match else None


def _spec_record(spec: JobSpec | None) -> dict[str, Any]:
    """What the manifest records of a deployment's spec (all None when it has none)."""
    if spec is None:
        return dict.fromkeys(("experiment", "kind", "params", "runtime", "image", "gpus"))
    return {"experiment": spec.experiment, "kind": spec.kind, "params": spec.params,
            "runtime": spec.runtime.name, "image": spec.image, "gpus": spec.gpus}  # fmt: skip


def _legacy_spec_record(path: Path) -> dict[str, Any]:
    """What the manifest records of a spec.json an earlier version wrote (other keys): the record only
    reports it; a live deployment's spec is read strictly, by the service job."""
    data = read_json(path)
    runtime = data.get("runtime") if isinstance(data, dict) else None
    return {**{k: data.get(k) for k in ("experiment", "kind", "params", "image", "gpus")},
            "runtime": runtime.get("name") if isinstance(runtime, dict) else runtime}  # fmt: skip


def service_record(service_dir: ServiceDir) -> dict[str, Any]:
    """Kind, launcher, job id, node, image of one deployment, from its own files (never its secrets)."""
    spec, spec_record = None, _spec_record(None)
    if service_dir.spec.is_file():
        try:
            spec = JobSpec.read(service_dir.spec)
            spec_record = _spec_record(spec)
        except RecordError:
            spec_record = _legacy_spec_record(service_dir.spec)
    endpoint = Endpoint.read_recorded(service_dir.endpoint) if service_dir.endpoint.is_file() else None
    stopped = read_json(service_dir.stopped) if service_dir.stopped.is_file() else {}
    handle = stopped.get("handle", {})
    node = endpoint.node if endpoint else None
    record: dict[str, Any] = {
        **spec_record,
        "launcher": handle.get("launcher"), "slurm_job_id": handle.get("job_id"),
        "partition": _partition(service_dir), "node": node or handle.get("node"),
        "started_at": endpoint.started_at if endpoint else None, "stopped_at": stopped.get("stopped_at"),
    }  # fmt: skip
    if spec is not None:
        record.update(_kind_provenance(spec))
    if service_dir.node_info.is_file():  # its node's hardware, as its service job found it
        record["hardware"] = {k: v for k, v in read_json(service_dir.node_info).items() if k != "node"}
    return record


def _kind_provenance(spec: JobSpec) -> dict[str, Any]:
    from aibench.containers import sif_path
    from aibench.services import SERVICES

    kind = SERVICES.create(spec.kind)
    out = kind.provenance(dict(spec.params))
    image = spec.image_of(kind.image)
    if spec.runtime.containerized:
        out["image"] = image
        image_dir = spec.runtime.apptainer.get("image_dir")
        if image_dir and (sif := sif_path(image, image_dir)).is_file():
            out["sif"], out["sif_sha256"] = str(sif), sha256(sif)
    return out


def point_records(run: RunDir, point_dirs: list[Path] | None = None) -> list[dict[str, Any]]:
    """One record per point, in the run's own order (``point_dirs``, as summary.csv lists them)."""
    out = []
    points = [PointDir(d) for d in point_dirs] if point_dirs is not None else run.measured_points()
    for summary_file in (p.summary for p in points):
        if not summary_file.is_file():
            continue
        s = read_json(summary_file)
        p = s.get("provenance", {})
        out.append({"experiment": s["experiment"], "deployment": s.get("deployment"), "point": s["point"],
                    "status": s["status"],
                    "host": p.get("host"), "slurm_job_id": p.get("slurm_job_id"),
                    "window": s.get("window")})  # fmt: skip
    return out


def build_manifest(
    results: Path, inputs: list[Path], config: dict[str, Any], point_dirs: list[Path] | None = None
) -> dict[str, Any]:
    run = RunDir(results)
    # each with its directory: a service sweep's deployments and their replicas share kind and experiment
    services = [{"directory": d.path.relative_to(run.root).as_posix(), **service_record(d)}
                for d in run.service_dirs()]  # fmt: skip
    points = point_records(run, point_dirs)
    starts = [s["started_at"] for s in services if s.get("started_at")]
    ends = [p["window"]["end"] for p in points if p.get("window")]
    ends += [s["stopped_at"] for s in services if s.get("stopped_at")]
    jobs = [*(s["slurm_job_id"] for s in services), *(p["slurm_job_id"] for p in points)]
    return {
        "manifest_version": "1",
        "results_schema_version": RESULTS_SCHEMA_VERSION,
        "written_at": time.time(),
        "started_at": min(starts, default=None),
        "ended_at": max(ends, default=None),
        "git": git_state(),
        "inputs": copy_inputs(inputs, run),
        "config": {
            k: config[k] for k in ("experiments", "launcher", "service_runtime", "container") if k in config
        },
        "software": software(),
        "hosts": sorted(
            {p["host"] for p in points if p["host"]} | {s["node"] for s in services if s["node"]}
        ),
        "slurm_jobs": sorted({str(j) for j in jobs if j}),
        "services": services,
        "points": points,
    }
