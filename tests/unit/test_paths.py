"""The project's own entries (where no results directory may go) follow what git tracks, and every
environment-variable expansion refuses unset variables."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aibench.errors import ConfigError
from aibench.paths import PROJECT_ENTRIES, PROJECT_ROOT, expand_env


def test_project_entries_cover_every_tracked_top_level_entry() -> None:
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. the installed rule image)")
    tracked = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    top = {name.split("/")[0] for name in tracked}
    assert not {t for t in top if not t.startswith(".")} - PROJECT_ENTRIES


def test_no_expansion_leaves_an_unset_variable_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_SET", "/scratch/u")
    monkeypatch.delenv("AIBENCH_UNSET", raising=False)
    assert expand_env("${AIBENCH_SET}/a/$AIBENCH_SET") == "/scratch/u/a//scratch/u"
    with pytest.raises(ConfigError, match=r"models_dir: \$AIBENCH_UNSET is not set"):
        expand_env("${AIBENCH_UNSET}/models", "models_dir")
    monkeypatch.setenv("AIBENCH_UNSET", "")
    with pytest.raises(ConfigError, match=r"is not set"):  # empty: '/models' is not what was meant
        expand_env("${AIBENCH_UNSET}/models")


def test_every_expansion_goes_through_expand_env() -> None:
    """os.path.expandvars keeps an unset variable as written: the literal '${AIBENCH_SCRATCH}' directory."""
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("aibench", "scripts")
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if "expandvars(" in path.read_text() and path != PROJECT_ROOT / "aibench" / "paths.py"
    ]
    assert offenders == []


def test_a_run_creates_no_literal_variable_directory() -> None:
    assert not [p.name for p in Path(PROJECT_ROOT).iterdir() if p.name.startswith("$")]
