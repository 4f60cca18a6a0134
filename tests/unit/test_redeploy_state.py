"""A deployment into a service directory holding an earlier one sets the earlier state aside, for the
kinds whose servers cannot run here (no grafana or ollama binary, no GPU for vLLM): the move happens in
lifecycle.deploy before the service job starts, whatever the kind (tests/integration/test_redeploy.py
redeploys the others for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibench import lifecycle
from aibench.contracts import DeploymentSpec
from aibench.paths import PROJECT_ROOT
from aibench.recipes import load_service
from aibench.rundir import ServiceDir

WITHOUT_SERVER = ["grafana", "ollama", "vllm"]


@pytest.mark.parametrize("kind", WITHOUT_SERVER)
def test_deploy_sets_the_earlier_state_aside(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftovers: float
) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", str(tmp_path / "scratch"))
    service_dir = tmp_path / "exp" / "service"
    (service_dir / "data").mkdir(parents=True)
    (service_dir / "data" / "state-of-the-first").write_text("1\n")
    params = load_service(PROJECT_ROOT / "recipes" / "services" / f"{kind}.yaml").params
    try:
        lifecycle.deploy(service_dir, DeploymentSpec("exp", kind, params))
    finally:
        lifecycle.stop_all([service_dir])
    [kept] = (service_dir / "replaced").iterdir()
    assert (kept / "data" / "state-of-the-first").read_text() == "1\n"
    assert not (service_dir / "data" / "state-of-the-first").exists()


def test_each_set_aside_is_kept_apart(tmp_path: Path) -> None:
    for number in range(3):
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "n").write_text(str(number))
        assert ServiceDir(tmp_path).retire_state() is not None
    kept = sorted((p / "data" / "n").read_text() for p in (tmp_path / "replaced").iterdir())
    assert kept == ["0", "1", "2"]
    assert ServiceDir(tmp_path).retire_state() is None  # nothing there: nothing moved
