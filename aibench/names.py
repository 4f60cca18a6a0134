"""The names a run's paths are built from (experiments, point ids, swept parameters), checked in one
place: recipes, the config and an archive's contents all go through :func:`name_problem`, so a name
that could climb out of a directory (``..``), hold a path separator, or take the place of one of the
results layout's own entries never becomes a path."""

from __future__ import annotations

import re

from aibench.rundir import RunDir

#: what each kind of name may look like (the schemas hold the same patterns, for their messages)
PATTERNS = {
    "experiment": re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"),
    "point": re.compile(r"[A-Za-z0-9+_-][A-Za-z0-9.+_-]{0,199}"),
    "parameter": re.compile(r"[a-z][a-z0-9_]{0,31}"),
}


def name_problem(kind: str, name: object) -> str | None:
    """Why ``name`` cannot be an ``kind`` name (experiment, point, parameter), or None."""
    pattern = PATTERNS[kind]
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        return f"{name!r} is not a valid {kind} name (allowed form: {pattern.pattern!r})"
    if kind == "experiment" and name in RunDir.ENTRIES:
        return (
            f"{name!r} is reserved for the results layout "
            f"(reserved: {', '.join(sorted(RunDir.ENTRIES))})"
        )
    return None
