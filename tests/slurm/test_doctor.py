"""`aibench doctor --profile meluxina` on the MeluXina-faithful cluster: every check passes with the test
cluster's environment, and each failure is provoked once and named with its fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT

pytestmark = pytest.mark.usefixtures("local_slurm", "apptainer_images")

#: experiments whose images have stand-ins here (Grafana has none)
GOOD = {"experiments": ["redis-default", "chroma-concurrency"], "monitoring": {"grafana": False}}


def doctor(tmp_path: Path, config: dict, *extra: str, **env: str | None) -> subprocess.CompletedProcess:
    path = tmp_path / "doctor.yaml"
    path.write_text(yaml.safe_dump(config))
    environment = {**os.environ, "AIBENCH_SCRATCH": str(tmp_path / "scratch"), "AIBENCH_MODULES": ""}
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    argv = [str(BIN / "aibench"), "doctor", "--profile", "meluxina", "--configfile", str(path), *extra]
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)


def failed_checks(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("[FAIL]")]


def test_every_check_passes_on_the_test_cluster(tmp_path: Path, no_leftovers: float) -> None:
    done = doctor(tmp_path, GOOD)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("Python", "snakemake", "apptainer", "account", "partition cpu", "QoS default", "scratch",
                 "rule image", "image docker://redis:7-alpine", "test job"):  # fmt: skip
        assert f"[ok] {name}" in out, out
    assert "ran on mel0" in out and "reached from the login node: yes" in out
    assert out.rstrip().endswith("all checks passed")


@pytest.mark.parametrize(
    ("what", "config", "env", "expected"),
    [
        ("unknown account", GOOD, {"AIBENCH_ACCOUNT": "p999999"}, "[FAIL] account: root has no association"),
        ("QoS", {**GOOD, "slurm": {"qos": "urgent"}}, {}, "[FAIL] QoS urgent"),
        ("partition", {**GOOD, "slurm": {"partition": "largemem"}}, {}, "[FAIL] partition largemem"),
        ("no apptainer", GOOD, {"PATH": "/usr/bin:/bin"}, "[FAIL] apptainer"),
        ("no scratch", GOOD, {"AIBENCH_SCRATCH": None}, "[FAIL] scratch: $AIBENCH_SCRATCH is not set"),
        ("a module", GOOD, {"AIBENCH_MODULES": "Apptainer/1.3.6-GCCcore-13.3.0"}, "[FAIL] module load"),
        ("rule image", {**GOOD, "container": "envs/none.sif"}, {}, "[FAIL] rule image: "),
        ("image without stand-in", {**GOOD, "experiments": ["mysql-threads"]}, {}, "[FAIL] image docker://mysql"),
    ],
)
def test_each_failure_is_named_with_its_fix(
    tmp_path: Path, what: str, config: dict, env: dict, expected: str
) -> None:
    done = doctor(tmp_path, config, "--no-test-job", **env)
    assert done.returncode == 1, done.stdout
    failed = failed_checks(done)
    assert any(line.startswith(expected) for line in failed), (what, failed)
    line = done.stdout.splitlines().index(next(f for f in failed if f.startswith(expected)))
    assert done.stdout.splitlines()[line + 1].strip().startswith("fix: "), done.stdout


def test_a_rule_image_from_another_def_is_stale(tmp_path: Path) -> None:
    """The rule image must come from today's envs/aibench.def: one built from another def file fails."""
    other = tmp_path / "other.def"
    other.write_text("Bootstrap: docker\nFrom: python:3.11-slim-bookworm\n")
    sif = ROOT / "envs" / f".test-stale-{os.getpid()}.sif"
    try:
        built = subprocess.run(["apptainer", "build", str(sif), str(other)], cwd=ROOT, capture_output=True,
                               text=True, timeout=900)  # fmt: skip
        assert built.returncode == 0, built.stderr
        done = doctor(tmp_path, {**GOOD, "container": str(sif.relative_to(ROOT))}, "--no-test-job")
        assert "[FAIL] rule image" in done.stdout and "not built from today's envs/aibench.def" in done.stdout
    finally:
        sif.unlink(missing_ok=True)
