"""Strict JSON records: a dataclass to a JSON object and back, refusing a missing or unknown key."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aibench.errors import AibenchError
from aibench.files import write_json

T = TypeVar("T")
R = TypeVar("R", bound="Record")


class RecordError(AibenchError):
    """A record file (spec.json, handle.json, endpoint.json) is not what its type says; names the file."""


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def checked(data: object, expected: Iterable[str], what: str, where: str) -> Mapping[str, Any]:
    """``data`` as a mapping holding exactly the keys ``expected``, or a RecordError naming ``where``."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: expected a JSON object ({what}), got {type(data).__name__}")
    wanted = set(expected)
    missing, unknown = sorted(wanted - data.keys()), sorted(data.keys() - wanted)
    problems = [f"missing {', '.join(map(repr, missing))}"] if missing else []
    problems += [f"unknown {', '.join(map(repr, unknown))}"] if unknown else []
    if problems:
        raise RecordError(f"{where}: not a valid {what} record: {'; '.join(problems)} key(s)")
    return data


def from_json(cls: type[T], data: object, where: str, fixed: Mapping[str, Any] | None = None) -> T:
    """A dataclass from ``data``, which must hold exactly its fields' keys (and ``fixed`` ones, with
    those values: e.g. ``launcher``). Fields typed as dataclasses, tuples of them, or paths are built
    from their JSON, recursively."""
    fixed = dict(fixed or {})
    record = checked(data, field_names(cls) | fixed.keys(), cls.__name__, where)
    for key, value in fixed.items():
        if record[key] != value:
            raise RecordError(f"{where}: field {key!r}: expected {value!r}, got {record[key]!r}")
    hints = typing.get_type_hints(cls)
    values = {
        f.name: _typed(hints[f.name], record[f.name], f"{where}: {f.name}") for f in dataclasses.fields(cls)
    }
    return cls(**values)


def _typed(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value, where)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args[1:] == (Ellipsis,) and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a JSON list, got {type(value).__name__}")
        return tuple(from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    paths = hint is Path or (isinstance(hint, types.UnionType) and Path in args)
    return Path(value) if paths and value is not None else value


def plain(value: Any) -> Any:
    """``value`` as JSON takes it: dataclasses and mappings as objects, paths as strings, tuples as
    lists, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def read_object(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; a RecordError naming it when it is not JSON (a missing file raises OSError)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{path}: not JSON ({exc})") from None


class Record:
    """Base of a dataclass kept as a JSON file: to and from JSON with exactly its fields' keys."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out

    @classmethod
    def from_json(cls: type[R], data: object, where: str) -> R:
        return from_json(cls, data, where)

    @classmethod
    def read(cls: type[R], path: str | os.PathLike[str]) -> R:
        return cls.from_json(read_object(path), str(path))

    def write(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_json())
