"""`aibench doctor`: a preflight on the login node before an allocation is spent, as a checklist.

Each check says what it found and, when it fails, how to fix it. The last one submits a 1-minute job
(QoS `test`) that starts on a compute node, writes to scratch, opens a port there and waits for the
login node to connect: the path every run depends on, tried for real.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aibench.containers import sif_path
from aibench.errors import AibenchError
from aibench.paths import PROJECT_ROOT, expand_env
from aibench.slurm_settings import account, modules, service_minutes

#: Apptainer releases older than this lack what the project uses (--env-file, --cleanenv semantics)
MIN_APPTAINER = (1, 1)
#: the test job's own time limit and how long the login node waits for it to start
TEST_JOB_MINUTES = 1
TEST_JOB_WAIT_S = 300


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _run(argv: list[str], timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{' '.join(argv)}: no answer within {timeout:g} s")


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _mapping(path: Path) -> dict[str, Any]:
    """A YAML file read with the project's loader (regular UTF-8 files only, no tags, no alias bombs),
    which must hold a mapping; else an AibenchError naming it."""
    from aibench.recipes.validation import load_yaml

    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        found = type(data).__name__
        raise AibenchError(f"{path}: field '(top level)': expected a mapping of fields, found a {found}")
    return data


def profile_config_files(profile: Path) -> list[Path]:
    """The config files a profile names (its `configfile:` list), relative to the project."""
    settings = _mapping(profile / "config.v8+.yaml")
    files = settings.get("configfile") or []
    return [PROJECT_ROOT / f for f in ([files] if isinstance(files, str) else files)]


def load_run(profile: Path, extra_files: list[Path]) -> Any:
    from aibench.recipes import load_plan

    files = profile_config_files(profile) + extra_files
    merged: dict[str, Any] = {}
    for path in files:
        _deep_update(merged, _mapping(path))
    return load_plan(merged, " + ".join(str(f) for f in files), PROJECT_ROOT, files)


# --------------------------------------------------------------------------------------------- checks
def check_versions() -> Iterator[Check]:
    from packaging.requirements import Requirement

    yield Check("Python", sys.version_info >= (3, 11), sys.version.split()[0], "use Python 3.11 or newer")
    wanted = {Requirement(r).name: Requirement(r) for r in metadata.requires("aibench") or []}
    for name in ("snakemake", "snakemake-executor-plugin-slurm"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            yield Check(name, False, "not installed", "pip install -e . in the project's venv")
            continue
        spec = wanted[name].specifier
        yield Check(
            name, spec.contains(version), f"{version} (project pins {spec})", f"pip install '{name}{spec}'"
        )


def check_modules(config: dict[str, Any]) -> Iterator[Check]:
    lines = modules(config)
    if not lines:
        yield Check("modules", True, "none configured ($AIBENCH_MODULES or slurm.modules)")
        return
    for line in lines:
        done = _run(["bash", "-lc", f"module load {line}"])
        yield Check(
            f"module load {line}",
            done.returncode == 0,
            (done.stderr or "loaded").strip()[-300:],
            "check `module avail`; set slurm.modules in config/meluxina.yaml or $AIBENCH_MODULES "
            "(empty: none)",
        )


def check_apptainer(config: dict[str, Any]) -> Iterator[Check]:
    binary = config["apptainer"]["binary"]
    done = _run([binary, "--version"])
    if done.returncode != 0:
        yield Check(
            "apptainer",
            False,
            done.stderr.strip() or "not found",
            "module load Apptainer (before Snakemake and doctor)",
        )
        return
    text = done.stdout.strip()
    numbers = re.search(r"(\d+)\.(\d+)", text)
    version = (int(numbers[1]), int(numbers[2])) if numbers else (0, 0)
    yield Check(
        "apptainer",
        version >= MIN_APPTAINER,
        text,
        f"load Apptainer {'.'.join(map(str, MIN_APPTAINER))} or newer",
    )


def check_account(config: dict[str, Any]) -> Iterator[Check]:
    try:
        name = account(config)
    except AibenchError as exc:
        yield Check("account", False, str(exc), "export AIBENCH_ACCOUNT=pNNNNNN")
        return
    if not name:
        yield Check("account", False, "none set", "export AIBENCH_ACCOUNT=pNNNNNN (your project)")
        return
    user = os.environ.get("USER") or _run(["id", "-un"]).stdout.strip()
    done = _run(
        [
            "sacctmgr",
            "-n",
            "-P",
            "show",
            "assoc",
            "where",
            f"account={name}",
            f"user={user}",
            "format=account,user,qos",
        ]
    )
    rows = [r for r in done.stdout.splitlines() if r.strip()]
    qos = config["slurm"]["qos"]
    allowed = {q for r in rows for q in r.split("|")[2].split(",")}
    if done.returncode != 0 or not rows:
        yield Check(
            "account",
            False,
            f"{user} has no association with account {name!r} {done.stderr.strip()}",
            "check the project id (sacctmgr show assoc user=$USER)",
        )
        return
    yield Check("account", True, f"{user} may use {name} (QoS {', '.join(sorted(allowed))})")
    if qos and allowed and qos not in allowed:
        yield Check(
            "QoS of account",
            False,
            f"{qos!r} not allowed for {name}",
            f"use one of {', '.join(sorted(allowed))} (slurm.qos)",
        )


def _minutes(text: str) -> float | None:
    """A SLURM time (D-HH:MM:SS, HH:MM:SS, MM:SS or MM) in minutes; None for no limit."""
    text = text.strip()
    if not text or text.lower() in ("unlimited", "infinite"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = parts[-3:]
    return int(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def check_partitions_and_qos(plan: Any) -> Iterator[Check]:
    config = plan.config
    wanted: dict[str, dict[str, int]] = {}
    experiments = list(plan.experiments.values())
    for exp, deployment in ((e, d) for e in experiments for d in e.deployments):
        resources = deployment.service.resources  # a service sweep may set them per deployment
        part = resources.get("partition") or config["slurm"]["partition"]
        need = wanted.setdefault(part, {"minutes": 0, "gpus": 0})
        planned = service_minutes(exp, experiments, config["serial_experiments"])  # the job's --time
        need["minutes"] = max(need["minutes"], resources.get("time_min") or planned)
        need["gpus"] = max(need["gpus"], resources.get("gpus", 0))
    for part, need in wanted.items():
        done = _run(["sinfo", "-h", "-p", part, "-o", "%l|%G"])
        rows = [r for r in done.stdout.splitlines() if r.strip()]
        if done.returncode != 0 or not rows:
            yield Check(
                f"partition {part}",
                False,
                (done.stderr.strip() or "no such partition"),
                "see `sinfo -s`; set slurm.partition or the recipe's resources.partition",
            )
            continue
        limit = _minutes(rows[0].split("|")[0])
        gres = " ".join(r.split("|")[1] for r in rows)
        gpus = max([int(n) for n in re.findall(r"gpu(?::[A-Za-z0-9_-]+)?:(\d+)", gres)] or [0])
        ok = (limit is None or need["minutes"] <= limit) and need["gpus"] <= gpus
        yield Check(
            f"partition {part}",
            ok,
            f"time limit {rows[0].split('|')[0]}, GPUs per node {gpus}; the run needs "
            f"{need['minutes']} min and {need['gpus']} GPUs",
            "ask for less (resources.time_min, gpus) or another partition",
        )
    qos = config["slurm"]["qos"]
    done = _run(["sacctmgr", "-n", "-P", "show", "qos", "where", f"name={qos}", "format=name,maxwall"])
    rows = [r for r in done.stdout.splitlines() if r.strip()]
    if done.returncode != 0 or not rows:
        yield Check(
            f"QoS {qos}",
            False,
            done.stderr.strip() or "no such QoS",
            "see `sacctmgr show qos`; set slurm.qos (MeluXina: default, short, test, ...)",
        )
        return
    limit = _minutes(rows[0].split("|")[1])
    longest = max((n["minutes"] for n in wanted.values()), default=0)
    yield Check(
        f"QoS {qos}",
        limit is None or longest <= limit,
        f"max wall {rows[0].split('|')[1] or 'none'}; the longest job needs {longest} min",
        "a QoS with a longer limit (default: 48 h), or fewer points per experiment",
    )


def check_scratch() -> Iterator[Check]:
    scratch = os.environ.get("AIBENCH_SCRATCH")
    if not scratch:
        yield Check(
            "scratch",
            False,
            "$AIBENCH_SCRATCH is not set",
            "export AIBENCH_SCRATCH=/project/scratch/pNNNNNN/$USER",
        )
        return
    path = Path(scratch)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".aibench-doctor-") as probe:
            probe.write(b"x")
        free = shutil.disk_usage(path).free
    except OSError as exc:
        yield Check("scratch", False, f"{path}: {exc.strerror or exc}", "a directory you can write to")
        return
    ok = free > 10 * 2**30
    yield Check(
        "scratch",
        ok,
        f"{path} writable, {free / 2**30:.0f} GiB free",
        "free space on scratch (images and model caches need tens of GiB)",
    )


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_rule_image(config: dict[str, Any]) -> Iterator[Check]:
    image = PROJECT_ROOT / (config.get("container") or "envs/aibench.sif")
    fix = f"cd {PROJECT_ROOT} && apptainer build --force {image.relative_to(PROJECT_ROOT)} envs/aibench.def"
    if not image.is_file():
        yield Check("rule image", False, f"{image} not built", fix)
        return
    binary = config["apptainer"]["binary"]
    deffile = _run([binary, "inspect", "--deffile", str(image)])
    own = (PROJECT_ROOT / "envs" / "aibench.def").read_text()
    if deffile.returncode != 0 or deffile.stdout.strip() != own.strip():
        yield Check("rule image", False, f"{image} was not built from today's envs/aibench.def", fix)
        return
    # the image's aibench is a copy made at build time: stale once the project's code has moved on
    code = (
        "import hashlib, pathlib, aibench\nroot = pathlib.Path(aibench.__file__).parent\n"
        "d = hashlib.sha256()\nfor p in sorted(root.rglob('*.py')):\n"
        "    d.update(str(p.relative_to(root)).encode() + b'\\0' + p.read_bytes())\nprint(d.hexdigest())"
    )
    # -P: the image's own aibench, not the one in the (bound) working directory
    hashed = _run([binary, "exec", "--cleanenv", str(image), "python3", "-P", "-c", code], timeout=120)
    if hashed.returncode != 0:
        yield Check(
            "rule image", False, f"aibench does not import in {image}: {hashed.stderr.strip()[-300:]}", fix
        )
        return
    same = hashed.stdout.strip() == _tree_hash(PROJECT_ROOT / "aibench")
    yield Check(
        "rule image",
        same,
        f"{image}: built from envs/aibench.def; its aibench {'matches' if same else 'differs from'} "
        "the project's",
        fix,
    )


def check_service_images(plan: Any) -> Iterator[Check]:
    from aibench.services import SERVICES

    settings = plan.config["apptainer"]
    image_dir = settings.get("image_dir")
    refs = {e.service.image or SERVICES.get(e.service.kind).image for e in plan.experiments.values()}
    if plan.monitoring["enabled"]:
        refs.add(SERVICES.get("prometheus").image)
    if plan.monitoring["enabled"] and plan.monitoring["grafana"]:
        refs.add(SERVICES.get("grafana").image)
    if shutil.which(settings["binary"]) is None:
        yield Check("service images", False, f"{len(refs)} images not checked: no {settings['binary']}",
                    "module load Apptainer")  # fmt: skip
        return
    for ref in sorted(refs):
        if not image_dir:
            yield Check(f"image {ref}", True, "pulled by each service job (no image_dir set)")
            continue
        sif = sif_path(ref, expand_env(image_dir, "apptainer.image_dir"))
        if sif.is_file():
            yield Check(f"image {ref}", True, f"cached: {sif}")
            continue
        sif.parent.mkdir(parents=True, exist_ok=True)
        done = _run([settings["binary"], "pull", str(sif), ref], timeout=3600)
        yield Check(
            f"image {ref}",
            done.returncode == 0,
            f"pulled into {sif}" if done.returncode == 0 else done.stderr.strip()[-400:],
            "compute and login nodes need the registry; or pull on a machine that has it and copy "
            f"the SIF to {sif}",
        )


TEST_JOB = """\
import socket, sys, time
scratch, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
host = socket.gethostbyname(socket.gethostname())
with open(f"{scratch}/.aibench-doctor-{token}", "w") as f:
    f.write(socket.gethostname())
server = socket.socket()
server.bind((host, 0))
server.listen(1)
server.settimeout(50)
with open(out + ".tmp", "w") as f:
    f.write(f"{socket.gethostname()} {host} {server.getsockname()[1]}")
import os; os.replace(out + ".tmp", out)
conn, _ = server.accept()
conn.sendall(token.encode())
conn.close()
"""


def check_test_job(config: dict[str, Any], python: str = sys.executable) -> Iterator[Check]:
    """A 1-minute job on QoS test: starts on a compute node, writes to scratch, listens on its node's
    address, and the login node connects to it."""
    scratch = os.environ.get("AIBENCH_SCRATCH")
    name = account(config)
    if not scratch or not name:
        yield Check("test job", False, "needs an account and $AIBENCH_SCRATCH (see above)")
        return
    token = secrets.token_hex(8)
    work = Path(scratch) / ".aibench-doctor"
    work.mkdir(parents=True, exist_ok=True)
    script, out = work / f"job-{token}.py", work / f"job-{token}.addr"
    script.write_text(TEST_JOB)
    argv = [
        "sbatch",
        "--parsable",
        f"--account={name}",
        "--qos=test",
        f"--time={TEST_JOB_MINUTES}",
        "--ntasks=1",
        "--mem=500",
        f"--output={work / f'job-{token}.log'}",
        "--job-name=aibench-doctor",
    ]
    if config["slurm"]["partition"]:
        argv.append(f"--partition={config['slurm']['partition']}")
    submitted = _run([*argv, f"--wrap=exec {python} {script} {scratch} {token} {out}"])
    if submitted.returncode != 0:
        yield Check("test job", False, submitted.stderr.strip(), "the account, QoS test and partition above")
        return
    job_id = submitted.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + TEST_JOB_WAIT_S
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not out.exists():
            yield Check(
                "test job",
                False,
                f"job {job_id} did not start within {TEST_JOB_WAIT_S} s",
                "`squeue -j` tells why (the test QoS has a high priority)",
            )
            return
        node, host, port = out.read_text().split()
        wrote = (Path(scratch) / f".aibench-doctor-{token}").read_text() == node
        try:
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                answer = conn.recv(64).decode()
        except OSError as exc:
            answer = f"{type(exc).__name__}: {exc}"
        reached = answer == token
        yield Check(
            "test job",
            wrote and reached,
            f"job {job_id} ran on {node}, wrote to scratch: {'yes' if wrote else 'no'}, its port "
            f"{host}:{port} reached from the login node: {'yes' if reached else answer}",
            "login-to-compute TCP must work for readiness probes and Prometheus",
        )
    finally:
        _run(["scancel", job_id])
        for leftover in work.glob(f"job-{token}*"):
            leftover.unlink(missing_ok=True)
        (Path(scratch) / f".aibench-doctor-{token}").unlink(missing_ok=True)


def run(
    profile: Path, extra_files: list[Path], test_job: bool = True, out: Callable[[str], None] = print
) -> int:
    """Run every check, print the checklist; 0 when all pass."""
    failed = 0
    try:
        plan = load_run(profile, extra_files)
    except AibenchError as exc:  # the checks that need no configuration still tell what else is wrong
        out(f"[FAIL] configuration: {exc}")
        out("       fix: correct the file and field named (an unset variable: export it first)")
        failed, groups = 1, [check_versions(), check_scratch()]
    else:
        config = plan.config
        groups = [
            check_versions(),
            check_modules(config),
            check_apptainer(config),
            check_account(config),
            check_partitions_and_qos(plan),
            check_scratch(),
            check_rule_image(config),
            check_service_images(plan),
        ]
        if test_job:
            groups.append(check_test_job(config))
    for group in groups:
        for check in group:
            out(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
            if not check.ok:
                failed += 1
                if check.fix:
                    out(f"       fix: {check.fix}")
    out(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
