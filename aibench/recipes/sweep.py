"""Sweep expansion: the cartesian product of swept parameters (linked lists varying together), times
repeats, as named points; the service sweep's combinations as named deployments."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
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


def combinations(sweep: dict[str, list[Any]], link: Sequence[Sequence[str]] = ()) -> list[dict[str, Any]]:
    """Every combination of ``sweep``'s values, the first parameter varying slowest: the cartesian
    product, except that the parameters of each ``link`` group take their i-th values together (their
    lists are of equal length; the loader checks). A group varies where its first parameter stands."""
    grouped = {name: tuple(group) for group in link for name in group}
    axes = list(dict.fromkeys(grouped.get(name, (name,)) for name in sweep))
    choices = [
        [dict(zip(group, values, strict=True)) for values in zip(*(sweep[n] for n in group), strict=True)]
        for group in axes
    ]
    result = []
    for parts in itertools.product(*choices):
        merged = {k: v for part in parts for k, v in part.items()}
        result.append({name: merged[name] for name in sweep})
    return result


def deployment_id(swept: dict[str, Any]) -> str:
    """A readable, filesystem- and wildcard-safe id of one service-sweep combination: ``io_threads-2``."""
    return point_id(swept, 0).removesuffix("_r0")


def expand(base: dict[str, Any], sweep: dict[str, list[Any]], repeats: int) -> list[Point]:
    """Points of an experiment, in sweep order (first swept parameter varies slowest)."""
    points: list[Point] = []
    for swept in combinations(sweep):
        for repeat in range(repeats):
            points.append(
                Point(id=point_id(swept, repeat), repeat=repeat, swept=swept, params={**base, **swept})
            )
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep values collide after making point ids; use distinct values")
    return points
