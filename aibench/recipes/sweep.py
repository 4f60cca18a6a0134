"""Sweep expansion: the cartesian product of swept parameters, times repeats, as named points."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass(frozen=True)
class Point:
    """One run of the client: its full parameter set, the swept values, and the repeat index."""

    id: str
    repeat: int
    swept: dict[str, Any] = field(hash=False)
    params: dict[str, Any] = field(hash=False)


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _UNSAFE.sub("+", str(value)).strip("+") or "x"


def point_id(swept: dict[str, Any], repeat: int) -> str:
    """A readable, filesystem- and wildcard-safe id: ``clients-50_pipeline-16_r0``."""
    body = "_".join(f"{name}-{_token(value)}" for name, value in swept.items()) or "base"
    if len(body) > 120:
        digest = hashlib.sha256(repr(sorted(swept.items())).encode()).hexdigest()[:12]
        body = f"{body[:100]}-{digest}"
    return f"{body}_r{repeat}"


def expand(base: dict[str, Any], sweep: dict[str, list[Any]], repeats: int) -> list[Point]:
    """Points of an experiment, in sweep order (first swept parameter varies slowest)."""
    names = list(sweep)
    points: list[Point] = []
    for values in itertools.product(*(sweep[n] for n in names)):
        swept = dict(zip(names, values, strict=True))
        for repeat in range(repeats):
            points.append(
                Point(id=point_id(swept, repeat), repeat=repeat, swept=swept, params={**base, **swept})
            )
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep values collide after making point ids; use distinct values")
    return points
