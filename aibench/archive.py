"""One file per run: `aibench archive RESULTS -o RUN.tar.gz` packs its raw results and provenance.

Members sit under ``run/``, mirroring the results directory: manifest.json, provenance/ (config and
recipe copies), summary.csv, and per experiment the points' summary.json, raw.csv.gz, metrics.csv and
logs, and the deployments' spec.json, endpoint.json, stopped.json and service.log. Never packed: any
file with owner-only permissions (secrets.env and every config file holding a credential are 0600),
service data directories (databases, Prometheus' TSDB), images. Unpacking refuses members that would
land outside the target directory.
"""

from __future__ import annotations

import stat
import tarfile
from pathlib import Path, PurePosixPath

from aibench.errors import ConfigError

TOP = "run"
POINT_FILES = {"summary.json", "raw.csv.gz", "metrics.csv"}
SERVICE_FILES = {"spec.json", "endpoint.json", "stopped.json", "service.log"}
RUN_FILES = {"manifest.json", "summary.csv"}
MONITORS = {"monitoring", "grafana"}


def _wanted(relative: Path, path: Path) -> bool:
    if stat.S_IMODE(path.stat().st_mode) & 0o077 == 0:  # owner-only: a secret, or holds one
        return False
    parts = relative.parts
    if parts[0] == "provenance" or (len(parts) == 1 and parts[0] in RUN_FILES):
        return True
    if len(parts) >= 4 and parts[1] == "points":
        return parts[-1] in POINT_FILES or parts[-1].endswith(".log")
    deployment = (len(parts) == 3 and parts[1] == "service") or (len(parts) == 2 and parts[0] in MONITORS)
    return deployment and (parts[-1] in SERVICE_FILES or parts[-1].endswith(".log"))


def members(results: Path) -> list[Path]:
    """The files of ``results`` that go into its archive, sorted."""
    return sorted(p for p in results.rglob("*") if p.is_file() and _wanted(p.relative_to(results), p))


def pack(results: Path, output: Path) -> list[Path]:
    results = Path(results)
    if not (results / "manifest.json").is_file():
        raise ConfigError(f"{results}: not a finished run (no manifest.json): run the workflow to its end")
    files = members(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=f"{TOP}/{path.relative_to(results).as_posix()}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    partial.replace(output)
    return files


def extract(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target``, refusing any member that would land outside it (an
    absolute name or '..': tarfile's "data" filter alone would strip a leading '/' and extract it)."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise ConfigError(f"unsafe archive member {member.name!r} (absolute or '..'); refused")
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, ConfigError) as exc:
        raise ConfigError(f"{archive}: not a usable run archive ({exc})") from None


def unpack(archive: Path, target: Path) -> Path:
    """Extract a run archive into ``target``; returns the run directory (target/run)."""
    extract(archive, target)
    run = target / TOP
    if not (run / "manifest.json").is_file():
        raise ConfigError(f"{archive}: no {TOP}/manifest.json inside: not an aibench run archive")
    return run
