"""Where the project's own files (schemas, recipes, data) are; a run's results layout is aibench.rundir's."""

from __future__ import annotations

import os
import re
from pathlib import Path

from aibench.errors import ConfigError

#: The repository root (the package is installed editable from it).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


#: the project's own top-level entries (tests/unit/test_paths.py keeps this in step with what git
#: tracks); a results directory may not lie in one. Hidden entries (.git, .snakemake, .venv...) are
#: the tools' and refused as well.
PROJECT_ENTRIES = frozenset(
    {"Makefile", "README.md", "Snakefile", "aibench", "bench", "config", "data", "docs", "envs", "examples",
     "monitoring", "paper", "profiles", "pyproject.toml", "recipes", "report", "rules", "scripts", "tests",
     "aibench.egg-info"}
)  # fmt: skip

_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def env_problem(value: str) -> str | None:
    """Why ``value`` cannot be expanded (an environment variable it names is unset or empty, or a
    ``${...}`` is malformed), or None. ``os.path.expandvars`` leaves an unset variable as written, and
    the literal ``${AIBENCH_SCRATCH}`` would become a directory in the working directory."""
    for match in _VARIABLE.finditer(value):
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return f"{match.group()!r} is not a variable reference (write ${{NAME}})"
        if not os.environ.get(name):
            return f"${name} is not set in the environment (it would stay a literal {match.group()!r})"
    return None


def expand_env(value: str, what: str = "path") -> str:
    """``value`` with its environment variables expanded; a ConfigError naming ``what`` when one is
    unset (checked when the workflow is parsed, so this fails only where the environment differs)."""
    problem = env_problem(value)
    if problem is not None:
        raise ConfigError(f"{what}: {problem}")
    return os.path.expandvars(value)


def schemas_dir() -> Path:
    return Path(os.environ.get("AIBENCH_SCHEMAS", PROJECT_ROOT / "config" / "schemas"))


def data_dir() -> Path:
    """The project's shipped data (data/datasets): $AIBENCH_DATA inside the rule image, which has no
    checkout of the project (envs/aibench.def copies it to /opt/aibench/data)."""
    return Path(os.environ.get("AIBENCH_DATA", PROJECT_ROOT / "data"))


def schema_path(name: str) -> Path:
    """Path of ``config/schemas/<name>.schema.yaml``."""
    return schemas_dir() / f"{name}.schema.yaml"
