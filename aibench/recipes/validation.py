"""Schema validation with errors that name the file, the field and what was expected.

Validation goes through ``snakemake.utils.validate`` (JSON Schema in YAML, defaults filled in);
its error is re-worded so the user sees ``<file>: field '<path>': <what was expected>``. Beyond the
schema, no number may be NaN or infinite, and no YAML mapping may set a key twice; the loader also
refuses control characters in recipe and config values (:func:`control_character`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aibench.errors import ConfigError
from aibench.paths import schema_path


def field_path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """A readable dotted path of the field an error is about (``sweep.clients[1]``)."""
    parts: list[str] = [prefix] if prefix else []
    for element in error.absolute_path:
        if isinstance(element, int):
            if parts:
                parts[-1] = f"{parts[-1]}[{element}]"
            else:
                parts.append(f"[{element}]")
        else:
            parts.append(str(element))
    return ".".join(parts) if parts else "(top level)"


def describe(error: jsonschema.ValidationError) -> str:
    """What was expected, in one line."""
    message = error.message
    if error.validator == "pattern":
        message = f"{error.instance!r} does not match the allowed form {error.validator_value!r}"
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed), key=str)  # YAML keys need not be strings
        message = f"unknown field(s) {', '.join(map(repr, extra))}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if description and error.validator not in ("additionalProperties", "required"):
        message += f" ({description.rstrip('.')})"
    return message


def _unwrap(exc: BaseException) -> jsonschema.ValidationError | None:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, jsonschema.ValidationError):
            return current
        stack += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None


def non_finite(data: Any, path: tuple[Any, ...] = ()) -> jsonschema.ValidationError | None:
    """The first NaN or infinite number in ``data``: JSON Schema bounds do not catch NaN (every
    comparison with it is false), and no recipe value means anything as NaN or infinity."""
    if isinstance(data, float) and not math.isfinite(data):
        return jsonschema.ValidationError(
            f"{data!r} is not a finite number", validator="finite", path=path, instance=data
        )
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        error = non_finite(value, (*path, key))
        if error is not None:
            return error
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_character(data: Any, path: tuple[Any, ...] = ()) -> jsonschema.ValidationError | None:
    """The first string in ``data`` holding a control character (newline, tab, NUL...), descriptions
    aside. Schema patterns cannot refuse a trailing newline (``$`` matches before one), and a value
    spanning lines would break the line-based files it is written to (job scripts, env and config files).
    """
    found = _CONTROL.search(data) if isinstance(data, str) else None
    if found is not None:
        return jsonschema.ValidationError(
            f"{data!r} holds the control character {found.group()!r}; only a description may span lines",
            validator="control",
            path=path,
            instance=data,
        )
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        error = None if key == "description" else control_character(value, (*path, key))
        if error is not None:
            return error
    return None


def check(data: Any, schema: str) -> jsonschema.ValidationError | None:
    """Validate ``data`` against ``config/schemas/<schema>.schema.yaml`` (filling in defaults).

    Returns the schema violation (or the first non-finite number), or None when ``data`` is valid.
    """
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(data, str(schema_path(schema)))
    except Exception as exc:
        error = _unwrap(exc)
        if error is None:
            raise
        return error
    return non_finite(data)


def validate(
    data: Any, schema: str, source: str | os.PathLike[str], field_prefix: str = ""
) -> dict[str, Any]:
    """Validate ``data`` (from file ``source``) against ``config/schemas/<schema>.schema.yaml``.

    Defaults from the schema are filled in. Raises :class:`ConfigError` naming file and field.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: field '(top level)': expected a mapping of fields, found {kind}")
    error = check(data, schema)
    if error is not None:
        raise ConfigError(f"{source}: field '{field_path(error, field_prefix)}': {describe(error)}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping setting one key twice is an error (PyYAML keeps the
    last value silently, so a typo'd copy of a field would quietly win). Merge keys (``<<``) may still
    be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the safe constructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"field {key!r} is set twice (first on line {first + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a syntax error or a key set twice becomes a ConfigError naming file and line."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
