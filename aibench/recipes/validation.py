"""Schema validation with errors that name the file, the field and what was expected.

Validation goes through ``snakemake.utils.validate`` (JSON Schema in YAML, defaults filled in);
its error is re-worded so the user sees ``<file>: field '<path>': <what was expected>``.
"""

from __future__ import annotations

import os
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
        extra = sorted(set(error.instance) - set(allowed))
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


def check(data: Any, schema: str) -> jsonschema.ValidationError | None:
    """Validate ``data`` against ``config/schemas/<schema>.schema.yaml`` (filling in defaults).

    Returns the schema violation, or None when ``data`` is valid.
    """
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(data, str(schema_path(schema)))
    except Exception as exc:
        error = _unwrap(exc)
        if error is None:
            raise
        return error
    return None


def validate(
    data: Any, schema: str, source: str | os.PathLike[str], field_prefix: str = ""
) -> dict[str, Any]:
    """Validate ``data`` (from file ``source``) against ``config/schemas/<schema>.schema.yaml``.

    Defaults from the schema are filled in. Raises :class:`ConfigError` naming file and field.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping of fields at the top level, found {kind}")
    error = check(data, schema)
    if error is not None:
        raise ConfigError(f"{source}: field '{field_path(error, field_prefix)}': {describe(error)}")
    return data


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a syntax error becomes a ConfigError naming file and line."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
