"""One file per run: `aibench archive RESULTS -o RUN.tar.gz` packs its raw results and provenance.

Members sit under ``run/``, mirroring the results directory: manifest.json, provenance/ (config and
recipe copies), summary.csv, and per experiment the points' summary.json, raw.csv.gz, metrics.csv and
logs, and the deployments' spec.json, endpoint.json, stopped.json and service.log. Never packed: any
file with owner-only permissions (secrets.env and every config file holding a credential are 0600),
service data directories (databases, Prometheus' TSDB), images.

An archive is not trusted when it is read back (docs/reliability.md): before anything is extracted,
every member must be a regular file or a directory whose name stays inside the target, and the members
must fit under a count and size cap; a run is unpacked into a fresh directory beside its final place
and moved there only once whole and checked (:func:`read_points`: every experiment, point and swept
parameter name is one a recipe could have), with a marker naming the archive's sha256, so a later
unpack of the same archive reuses it and any other (or a failed one) does not.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aibench.errors import ConfigError
from aibench.files import sha256_file
from aibench.names import name_problem
from aibench.rundir import SUMMARY_GLOB, PointDir, RunDir, is_record, summary_files

TOP = "run"
__all__ = ["SUMMARY_GLOB", "TOP", "RunPoint", "extract", "members", "pack", "read_points", "unpack"]

#: caps on what unpacking an archive may write, checked on the members' headers before extracting any
MAX_BYTES = 2 * 1024**3  # sum of the regular files' sizes
MAX_MEMBERS = 100_000
MAX_BYTES_ENV = "AIBENCH_ARCHIVE_MAX_BYTES"
MAX_MEMBERS_ENV = "AIBENCH_ARCHIVE_MAX_MEMBERS"
#: written into the unpacked run last, just before it is moved into place: which archive it came from
MARKER = ".unpacked-from.json"
#: what reading or extracting a broken archive raises (a truncated gzip stream ends in EOFError)
_BROKEN = (tarfile.TarError, OSError, EOFError, zlib.error)


def _wanted(relative: Path, path: Path) -> bool:
    if stat.S_IMODE(path.stat().st_mode) & 0o077 == 0:  # owner-only: a secret, or holds one
        return False
    return is_record(relative)


def members(results: Path) -> list[Path]:
    """The files of ``results`` that go into its archive, sorted."""
    return sorted(p for p in results.rglob("*") if p.is_file() and _wanted(p.relative_to(results), p))


def pack(results: Path, output: Path) -> list[Path]:
    results = Path(results)
    if not RunDir(results).manifest.is_file():
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


# --- unpacking --------------------------------------------------------------------------------------


def _cap(value: int | None, env: str, default: int) -> int:
    if value is not None:
        return value
    raw = os.environ.get(env)
    if raw is None:
        return default
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ConfigError(f"environment variable {env}: {raw!r} is not a positive whole number")
    return cap


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isdev():
        return "device or FIFO"
    return f"member of tar type {member.type!r}"


def _checked_members(
    tar: tarfile.TarFile, max_bytes: int | None, max_members: int | None
) -> list[tarfile.TarInfo]:
    """The archive's members, read header by header (so a cap stops the reading, too), each checked.

    tarfile's "data" filter (CPython Lib/tarfile.py, ``data_filter`` -> ``_get_filtered_attrs``,
    python/cpython@00098914a226d9aa0cb42808cb66724f98e3168d and 3.11's copy alike) refuses only special
    files (devices, FIFOs: SpecialFileError), absolute links and links or names resolving outside the
    destination; it lets symbolic and hard links inside the destination through, strips a leading '/'
    from a name and extracts it, and caps neither sizes nor counts. Hence, here: a name must be relative
    without '..', a member a regular file or a directory, and the members within both caps."""
    byte_cap = _cap(max_bytes, MAX_BYTES_ENV, MAX_BYTES)
    member_cap = _cap(max_members, MAX_MEMBERS_ENV, MAX_MEMBERS)
    checked: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        if len(checked) == member_cap:
            raise ConfigError(f"more than {member_cap} members (the cap; {MAX_MEMBERS_ENV} sets it)")
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise ConfigError(f"unsafe archive member {member.name!r} (absolute or '..'); refused")
        if not (member.isreg() or member.isdir()):
            raise ConfigError(
                f"archive member {member.name!r} is a {_kind(member)}: only regular files and "
                "directories are unpacked"
            )
        total += member.size if member.isreg() else 0
        if total > byte_cap:
            raise ConfigError(
                f"its members hold more than {byte_cap} bytes (the cap; {MAX_BYTES_ENV} sets it)"
            )
        checked.append(member)
    return checked


def extract(
    archive: Path, target: Path, max_bytes: int | None = None, max_members: int | None = None
) -> None:
    """Extract ``archive`` into ``target``, refusing it whole, before extracting anything, if a member
    would land outside ``target`` (an absolute name or '..'), is not a regular file or a directory, or
    the members exceed ``max_bytes`` in all or number more than ``max_members`` (defaults:
    $AIBENCH_ARCHIVE_MAX_BYTES or 2 GiB, $AIBENCH_ARCHIVE_MAX_MEMBERS or 100,000). A broken archive can
    still fail midway: :func:`unpack` extracts into a fresh directory for that reason."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            checked = _checked_members(tar, max_bytes, max_members)
            tar.errorlevel = 2  # every error raises, none is only logged
            tar.extractall(target, members=checked, filter="data")
    except (*_BROKEN, ConfigError) as exc:
        raise ConfigError(f"{archive}: not a usable run archive: {exc}") from None




def unpacked_from(run: Path) -> str | None:
    """The sha256 of the archive ``run`` was unpacked from, as its marker says (None: no valid marker)."""
    try:
        marker = json.loads((run / MARKER).read_text())
    except (OSError, ValueError):
        return None
    digest = marker.get("sha256") if isinstance(marker, dict) else None
    return digest if isinstance(digest, str) else None


def unpack(
    archive: Path,
    target: Path,
    max_bytes: int | None = None,
    max_members: int | None = None,
    check: Callable[[RunPoint, str], None] | None = None,
) -> Path:
    """The run in ``archive``, unpacked at ``target``/run (returned).

    Reused as it is if its marker names this archive's sha256; otherwise extracted into a fresh
    directory beside it (same filesystem), its manifest and every name in it checked (:func:`read_points`,
    then ``check`` on each point, with its summary.json named for messages), the marker written last,
    and only then moved into place, replacing any run there. A failure leaves nothing of the new archive
    behind, and ``target``/run as it was (short of the final two renames failing between them: then no
    run, which the next unpack redoes)."""
    archive, target = Path(archive), Path(target)
    final = target / TOP
    try:
        digest = sha256_file(archive)
    except OSError as exc:
        raise ConfigError(f"{archive}: cannot read the run archive ({exc})") from None
    if unpacked_from(final) == digest:
        return final
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{TOP}-", suffix=".partial", dir=target))
    except OSError as exc:
        raise ConfigError(f"{archive}: cannot unpack it into {target} ({exc})") from None
    try:
        extract(archive, staging, max_bytes, max_members)
        run = staging / TOP
        if not RunDir(run).manifest.is_file():
            raise ConfigError(f"{archive}: no {TOP}/manifest.json inside: not an aibench run archive")
        for point in read_points(run, str(archive), f"{TOP}/"):
            if check is not None:
                summary = PointDir(point.directory).summary.relative_to(run).as_posix()
                check(point, f"{archive}: {TOP}/{summary}")
        (run / MARKER).write_text(json.dumps({"archive": str(archive), "sha256": digest}) + "\n")
        if final.exists() or final.is_symlink():
            os.replace(final, staging / "previous")  # staging/ holds only run/: the name is free
        os.replace(run, final)
    except OSError as exc:
        raise ConfigError(f"{archive}: cannot unpack it into {final} ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# --- what an unpacked run (or a results directory) says -----------------------------------------------


@dataclass(frozen=True)
class RunPoint:
    """One point of a run as its summary.json says, every name in it checked."""

    experiment: str
    point: str
    client: str
    swept: tuple[str, ...]
    directory: Path
    #: the service-sweep combination it ran on (None: its experiment had one deployment)
    deployment: str | None = None
    #: the service parameters (and resources, replicas) its service sweep set
    service_swept: tuple[str, ...] = ()


def _read(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: not readable JSON ({exc})") from None


def _name(kind: str, value: object, where: str, field: str) -> str:
    problem = name_problem(kind, value)
    if problem is not None:
        raise ConfigError(f"{where}: field {field!r}: {problem}")
    assert isinstance(value, str)
    return value


def _summary(path: Path, where: str) -> RunPoint:
    s = _read(path, where)
    if not isinstance(s, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(s).__name__}")
    experiment = _name("experiment", s.get("experiment"), where, "experiment")
    point = _name("point", s.get("point"), where, "point")
    deployment = s.get("deployment")
    dirs = [("experiment", experiment, path.parents[2]), ("point", point, path.parent)]
    if deployment is not None:  # <experiment>/<deployment>/points/<point>/summary.json
        deployment = _name("point", deployment, where, "deployment")
        dirs[0:1] = [("experiment", experiment, path.parents[3]), ("deployment", deployment, path.parents[2])]
    for field, value, directory in dirs:
        if value != directory.name:
            raise ConfigError(
                f"{where}: field {field!r}: {value!r} is not the name of its directory, {directory.name!r}"
            )
    client = s.get("client")
    kind = client.get("kind") if isinstance(client, Mapping) else None
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: field 'client.kind': expected a string, got {kind!r}")
    from aibench.clients import CLIENTS

    if kind not in CLIENTS.names():  # its presentation (figures, tables) is the kind's own
        raise ConfigError(
            f"{where}: field 'client.kind': {kind!r} is not a client kind of this version of aibench "
            f"(known: {', '.join(CLIENTS.names())})"
        )
    swept = s.get("swept")
    if not isinstance(swept, Mapping | list):
        raise ConfigError(f"{where}: field 'swept': expected an object (parameter: value), got {swept!r}")
    params = tuple(_name("parameter", p, where, "swept") for p in swept)
    service = s.get("service")
    service_swept = service.get("swept", {}) if isinstance(service, Mapping) else {}
    if not isinstance(service_swept, Mapping):
        raise ConfigError(f"{where}: field 'service.swept': expected an object, got {service_swept!r}")
    served = tuple(_name("parameter", p, where, "service.swept") for p in service_swept)
    return RunPoint(experiment, point, kind, params, path.parent, deployment, served)


def _manifest_order(path: Path, where: str) -> list[tuple[str, str | None, str]]:
    manifest = _read(path, where)
    listed = manifest.get("points", []) if isinstance(manifest, Mapping) else None
    if not isinstance(listed, list):
        raise ConfigError(f"{where}: field 'points': expected a list of points, got {listed!r}")
    order = []
    for i, entry in enumerate(listed):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: field 'points[{i}]': expected an object, got {entry!r}")
        experiment = _name("experiment", entry.get("experiment"), where, f"points[{i}].experiment")
        deployment = entry.get("deployment")
        if deployment is not None:
            deployment = _name("point", deployment, where, f"points[{i}].deployment")
        point = _name("point", entry.get("point"), where, f"points[{i}].point")
        order.append((experiment, deployment, point))
    return order


def read_points(root: Path, label: str, prefix: str = "") -> list[RunPoint]:
    """The points of the run at ``root`` (``*/points/*/summary.json``), in the order its manifest.json
    lists them, then any others sorted. Every experiment and point name in the manifest and every
    experiment, point and swept parameter name in a summary must be one a recipe could have
    (:func:`aibench.names.name_problem`), and a summary's experiment and point its directories' names,
    or a ConfigError says ``<label>: <prefix><file>: field '<field>': ...``."""

    def where(path: Path) -> str:
        return f"{label}: {prefix}{path.relative_to(root).as_posix()}"

    manifest = RunDir(root).manifest
    order = _manifest_order(manifest, where(manifest)) if manifest.is_file() else []
    found = {}
    for path in summary_files(root):
        p = _summary(path, where(path))
        found[(p.experiment, p.deployment, p.point)] = p
    ordered = [found.pop(key) for key in order if key in found]
    return ordered + list(found.values())
