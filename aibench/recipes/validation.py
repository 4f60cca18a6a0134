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
from typing import Any

import jsonschema
import yaml

from aibench.errors import ConfigError
from aibench.files import read_input
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


#: largest config or recipe file read (the shipped ones are a few kB): refused before it is read
MAX_FILE_BYTES = 1 << 20
#: most YAML nodes a document may expand to, an alias counting as the whole node it names: a
#: "billion laughs" document is a few lines whose aliases expand to billions of values
MAX_NODES = 100_000
#: YAML 1.1 integers PyYAML reads other than as written: a leading zero is octal (010 is 8) and
#: colons are base 60 (1:30 is 90)
_SURPRISING_NUMBER = re.compile(r"[-+]?(0[0-9_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping setting one key twice is an error (PyYAML keeps the
    last value silently, so a typo'd copy of a field would quietly win), and that numbers YAML 1.1
    reads other than they look (``010``, ``1:30``) are refused. Merge keys (``<<``) may be overridden."""

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

    def construct_literal_number(self, node: yaml.ScalarNode) -> Any:
        if _SURPRISING_NUMBER.fullmatch(node.value):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{node.value!r} is read by YAML 1.1 as a number other than it looks (a leading zero is "
                "octal, colons are base 60): write it without them, or quote it to mean a string",
                node.start_mark,
            )
        constructor = SafeInts.int if node.tag.endswith(":int") else SafeInts.float
        return constructor(self, node)


class SafeInts:
    """PyYAML's own number constructors, which :class:`_UniqueKeyLoader` calls after its check."""

    int = yaml.SafeLoader.yaml_constructors["tag:yaml.org,2002:int"]
    float = yaml.SafeLoader.yaml_constructors["tag:yaml.org,2002:float"]


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_literal_number)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_literal_number)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many nodes ``node`` stands for once every alias in it is expanded (memoised per node, so
    this costs one pass over the document as written)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise yaml.composer.ComposerError(
            None, None, "an alias refers to the node holding it", node.start_mark
        )
    open_.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    open_.discard(key)
    sizes[key] = size
    return size


def _culprit(node: yaml.Node, sizes: dict[int, int]) -> str:
    """The field holding a document's excess: down through mappings while one value alone is too big."""
    path: list[str] = []
    while isinstance(node, yaml.MappingNode):
        big = [(k, v) for k, v in node.value if sizes.get(id(v), 0) > MAX_NODES]
        if len(big) != 1 or not isinstance(big[0][0], yaml.ScalarNode):
            break
        path.append(str(big[0][0].value))
        node = big[0][1]
    return ".".join(path) or "(top level)"


def parse_yaml(text: str, source: str | os.PathLike[str]) -> Any:
    """Parse YAML ``text`` from ``source`` (a file, or a command-line option) with the project's loader:
    safe tags only, no key twice, no YAML 1.1 surprise numbers, at most :data:`MAX_NODES` nodes once
    aliases are expanded. Any problem is a ConfigError naming ``source`` (and the line)."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        size = _expanded_size(node, sizes, set())
        if size > MAX_NODES:
            raise ConfigError(
                f"{source}: field '{_culprit(node, sizes)}': YAML document expands to {size} values (its "
                f"aliases repeat nodes), more than the {MAX_NODES} a config or recipe may have"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def read_text_file(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """The text of the regular file ``path`` (:func:`aibench.files.read_input`: no directory, FIFO,
    device, symlink loop, nor a file over ``limit`` bytes), which must be UTF-8 text; else a
    ConfigError naming it."""
    data = read_input(path, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r}; a binary "
            "file, or text in another encoding such as UTF-16: save it as UTF-8)"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{path}: holds a NUL byte at offset {text.index(chr(0))}: a binary file, not YAML")
    return text


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file (see :func:`read_text_file` and :func:`parse_yaml`); every problem is a
    ConfigError naming the file. A file asking for Snakemake's YTE templating (``__use_yte__``) is
    refused: the workflow's config and recipe files are data, not code."""
    data = parse_yaml(read_text_file(path), path)
    if isinstance(data, dict) and "__use_yte__" in data:
        raise ConfigError(
            f"{path}: field '__use_yte__': YTE templating is refused (config and recipe files are data, not "
            "code; Snakemake evaluates a --configfile's YTE while reading it, so do not run such a file - "
            "see docs/reliability.md)"
        )
    return data


def expanded_count(data: Any) -> int:
    """How many values ``data`` holds once shared parts are counted each time they appear (what a
    validator walking it visits), memoised per object; a structure holding itself counts as too many."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def count(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in open_:
            return MAX_NODES + 1
        open_.add(key)
        children = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        sizes[key] = 1 + sum(1 + count(v) for _, v in children)
        open_.discard(key)
        return sizes[key]

    return count(data)
