"""Helpers to run the real workflow (snakemake, local profile) on a private recipes/results copy."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    return tmp_path


@pytest.fixture
def make_config(workspace: Path) -> Callable[..., Path]:
    def make(experiment: dict | None = None, name: str = "redis-e2e", **config: object) -> Path:
        if experiment is not None:
            (workspace / "recipes" / "experiments" / f"{name}.yaml").write_text(yaml.safe_dump(experiment))
        data = {
            "experiments": [name],
            "results": str(workspace / "results"),
            "recipes": str(workspace / "recipes"),
            **config,
        }
        path = workspace / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def snakemake(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/local", "--configfile", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
