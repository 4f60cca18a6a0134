"""Load config and recipes, validate each against its schema, and expand experiments into points.

Everything here runs when the workflow is parsed, so a bad file stops the run before anything
starts; every error names the file and the field.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibench.clients import CLIENTS
from aibench.errors import ConfigError
from aibench.paths import PROJECT_ROOT
from aibench.recipes.sweep import Point, expand, point_id
from aibench.recipes.validation import (
    check,
    control_character,
    describe,
    field_path,
    load_yaml,
    validate,
)
from aibench.services import SERVICES

#: names of results/ entries that are not experiments
RESERVED_NAMES = frozenset({"monitoring", "grafana", "figures", "logs", "paper"})
#: most points one experiment may expand to (each is a workflow job and a load run)
MAX_POINTS = 10000
#: system directories a results directory may neither be nor lie in
SYSTEM_DIRS = tuple(
    Path(d) for d in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                      "/sbin", "/sys", "/usr")
)  # fmt: skip


@dataclass(frozen=True)
class ServiceRecipe:
    name: str
    file: Path
    kind: str
    params: dict[str, Any]
    ready_timeout_s: float
    ready_interval_s: float
    stop_grace_s: float
    description: str = ""
    image: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientRecipe:
    name: str
    file: Path
    kind: str
    params: dict[str, Any]
    timeout_s: float
    description: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    file: Path
    service: ServiceRecipe
    client: ClientRecipe
    sweep: dict[str, list[Any]]
    repeats: int
    points: list[Point]
    description: str = ""
    placement: str = "same-node"

    def point(self, point_id: str) -> Point:
        for p in self.points:
            if p.id == point_id:
                return p
        raise KeyError(f"experiment {self.name!r} has no point {point_id!r}")


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, validated: the config and its experiments with their points."""

    config: dict[str, Any]
    recipes_dir: Path
    experiments: dict[str, Experiment] = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return Path(self.config["results"])

    @property
    def monitoring(self) -> dict[str, Any]:
        return self.config["monitoring"]


def _defines(path: Path, field: list[Any], value: Any) -> bool:
    """True when the YAML file ``path`` sets ``field`` to ``value``."""
    try:
        node = load_yaml(path)
        for element in field:
            node = node[element]
        return bool(node == value)
    except (ConfigError, KeyError, IndexError, TypeError):
        return False


def _setter(elements: list[Any], value: Any, source: str, files: list[Path] | tuple[Path, ...]) -> str:
    """The last of ``files`` setting field ``elements`` to ``value``, else ``source``."""
    where = next(
        (str(f) for f in reversed(files) if elements and _defines(Path(f), elements, value)),
        None,
    )
    return where or (str(files[-1]) if files and not elements else source)


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry
        return None


def results_problem(results: str, workflow_dir: str | Path) -> str | None:
    """Why ``results`` (relative to the working directory) cannot hold a run's results, or None.

    Anywhere else is fine (scratch on HPC): the run writes its experiments' folders, tables and
    figures into the directory, so it must be one of its own - not the filesystem root, a top-level
    or system directory, the home directory, nor the working or workflow directory or one holding them.
    """
    normal = Path(os.path.abspath(results))
    for path in dict.fromkeys((normal, normal.resolve())):
        shown = repr(results) if str(path) == results else f"{results!r} ({path})"
        if len(path.parts) <= 2:
            return f"{shown} is the filesystem root or a top-level directory; give the run one of its own"
        system = next((d for d in SYSTEM_DIRS if d == path or d in path.parents), None)
        if system is not None:
            return f"{shown} is in the system directory {system}; results belong in a directory of your own"
        if path == _home():
            return f"{shown} is the home directory itself; give the run a directory of its own"
        for base in (Path.cwd().resolve(), Path(workflow_dir).resolve()):
            if path == base or path in base.parents:
                return (
                    f"{shown} is the working or workflow directory {base} or holds it; the run's "
                    "experiment folders would mix with the project's files"
                )
    return None


def load_config(
    data: Any,
    source: str,
    files: list[Path] | tuple[Path, ...] = (),
    workflow_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Validate a config mapping, filling in defaults.

    ``data`` may merge several ``files`` (lowest precedence first) and ``--config`` values; an error
    names the last file that sets the offending field to the offending value, else ``source``.
    With ``workflow_dir``, the results directory is checked too (:func:`results_problem`).
    """
    if not isinstance(data, dict):
        return validate(data, "config", source)
    for path in files:  # the merged mapping no longer shows a field set twice in one file
        load_yaml(path)
    data = copy.deepcopy(data)
    error = check(data, "config")
    if error is not None:
        where = _setter(list(error.absolute_path), error.instance, source, files)
        raise ConfigError(f"{where}: field '{field_path(error)}': {describe(error)}")
    error = control_character(data)
    if error is not None:
        where = _setter(list(error.absolute_path), error.instance, source, files)
        raise ConfigError(f"{where}: field '{field_path(error)}': {describe(error)}")
    problem = None if workflow_dir is None else results_problem(data["results"], workflow_dir)
    if problem is not None:
        where = _setter(["results"], data["results"], source, files)
        raise ConfigError(f"{where}: field 'results': {problem}")
    return data


def _recipe_file(recipes_dir: Path, folder: str, name: str, referrer: str) -> Path:
    path = recipes_dir / folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (recipes_dir / folder).glob("*.yaml"))
        raise ConfigError(
            f"{referrer}: no {folder[:-1]} recipe {name!r} ({path} does not exist; "
            f"available: {', '.join(available) or 'none'})"
        )
    return path


def _kind_schema(registry: Any, kind: str, source: Path) -> str:
    try:
        cls = registry.get(kind)
    except KeyError as exc:
        raise ConfigError(f"{source}: field 'kind': {exc.args[0]}") from None
    return cls.params_schema


def _plain(data: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """``data`` (a validated file), unless one of its values holds a control character."""
    error = control_character(data)
    if error is not None:
        raise ConfigError(f"{source}: field '{field_path(error)}': {describe(error)}")
    return data


def _merge_params(
    base: dict[str, Any], overrides: dict[str, Any], schema: str, source: Path, prefix: str
) -> dict[str, Any]:
    merged = {**base, **overrides}
    return validate(merged, schema, source, field_prefix=prefix)


def load_service(path: Path) -> ServiceRecipe:
    data = _plain(validate(load_yaml(path), "service", path), path)
    schema = _kind_schema(SERVICES, data["kind"], path)
    params = validate(data["params"], schema, path, field_prefix="params")
    return ServiceRecipe(
        name=path.stem,
        file=path,
        kind=data["kind"],
        params=params,
        ready_timeout_s=float(data["readiness"]["timeout_s"]),
        ready_interval_s=float(data["readiness"]["interval_s"]),
        stop_grace_s=float(data["stop"]["grace_s"]),
        description=data.get("description", ""),
        image=data.get("image"),
        resources=data["resources"],
    )


def load_client(path: Path) -> ClientRecipe:
    data = _plain(validate(load_yaml(path), "client", path), path)
    schema = _kind_schema(CLIENTS, data["kind"], path)
    params = validate(data["params"], schema, path, field_prefix="params")
    return ClientRecipe(
        name=path.stem,
        file=path,
        kind=data["kind"],
        params=params,
        timeout_s=float(data["timeout_s"]),
        description=data.get("description", ""),
    )


def _check_sweep(sweep: dict[str, list[Any]], base: dict[str, Any], client: ClientRecipe, path: Path) -> None:
    kind = CLIENTS.get(client.kind)
    schema = kind.params_schema
    for name, values in sweep.items():
        if name in kind.prepare_params:
            raise ConfigError(
                f"{path}: field 'sweep.{name}': {name!r} shapes the data prepared once per deployment by "
                f"client kind {client.kind!r}; it cannot be swept (make one experiment per value)"
            )
        if name not in base:
            raise ConfigError(
                f"{path}: field 'sweep.{name}': not a parameter of client kind {client.kind!r} "
                f"(known: {', '.join(sorted(base))})"
            )
        for index, value in enumerate(values):
            error = check({**base, name: value}, schema)
            if error is not None:
                other = field_path(error)  # a rule tying this parameter to another one
                detail = (
                    describe(error)
                    if other == name
                    else f"with this value, field '{other}': {describe(error)}"
                )
                raise ConfigError(f"{path}: field 'sweep.{name}[{index}]': {detail}")


def _check_points(sweep: dict[str, list[Any]], repeats: int, path: Path) -> None:
    """Sweep values must give distinct point ids, and not too many points."""
    for name, values in sweep.items():
        seen: dict[str, Any] = {}
        for value in values:
            token = point_id({name: value}, 0).removesuffix("_r0")
            if token in seen:
                raise ConfigError(
                    f"{path}: field 'sweep.{name}': values {seen[token]!r} and {value!r} give the same "
                    f"point id {token!r} (ids keep letters, digits, '.', '+' and '-'); make them differ there"
                )
            seen[token] = value
    count = math.prod(len(values) for values in sweep.values()) * repeats
    if count > MAX_POINTS:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in sweep.items())
        raise ConfigError(
            f"{path}: field 'sweep': {sizes} x {repeats} repeats make {count} points, more than the "
            f"{MAX_POINTS} one experiment may have"
        )


def load_experiment(path: Path, recipes_dir: Path) -> Experiment:
    data = _plain(validate(load_yaml(path), "experiment", path), path)
    service = load_service(_recipe_file(recipes_dir, "services", data["service"], f"{path}: field 'service'"))
    client = load_client(_recipe_file(recipes_dir, "clients", data["client"], f"{path}: field 'client'"))
    drives = CLIENTS.get(client.kind).services
    if drives and service.kind not in drives:
        raise ConfigError(
            f"{path}: field 'client': client kind {client.kind!r} (recipe {client.name!r}) drives service "
            f"kinds {', '.join(drives)}, not {service.kind!r} (recipe {service.name!r})"
        )
    service_schema = SERVICES.get(service.kind).params_schema
    client_schema = CLIENTS.get(client.kind).params_schema
    service_params = _merge_params(
        service.params, data["service_params"], service_schema, path, "service_params"
    )
    client_params = _merge_params(client.params, data["client_params"], client_schema, path, "client_params")
    _check_sweep(data["sweep"], client_params, client, path)
    if SERVICES.get(service.kind).loopback_only and data["placement"] == "other-node":
        raise ConfigError(
            f"{path}: field 'placement': service kind {service.kind!r} has no authentication and listens on "
            "its node's loopback only; its clients must run on the same node (placement: same-node)"
        )

    _check_points(data["sweep"], data["repeats"], path)
    try:
        points = expand(client_params, data["sweep"], data["repeats"])
    except ValueError as exc:  # ids colliding across swept parameters
        raise ConfigError(f"{path}: field 'sweep': {exc}") from None
    return Experiment(
        name=path.stem,
        file=path,
        service=ServiceRecipe(**{**service.__dict__, "params": service_params}),
        client=ClientRecipe(**{**client.__dict__, "params": client_params}),
        sweep=data["sweep"],
        repeats=data["repeats"],
        points=points,
        description=data.get("description", ""),
        placement=data["placement"],
    )


def load_plan(
    config: Any, source: str, workflow_dir: str | Path, files: list[Path] | tuple[Path, ...] = ()
) -> Plan:
    """Validate ``config`` (read from ``files``, else ``source``) and every recipe it uses; expand points."""
    config = load_config(config, source, files, workflow_dir)
    recipes_dir = Path(config["recipes"])
    if not recipes_dir.is_absolute():
        recipes_dir = Path(workflow_dir) / recipes_dir
    if not recipes_dir.is_dir():
        raise ConfigError(f"{source}: field 'recipes': directory {recipes_dir} does not exist")
    plan = Plan(config=config, recipes_dir=recipes_dir)
    for index, name in enumerate(config["experiments"]):
        if name in RESERVED_NAMES:
            raise ConfigError(
                f"{source}: field 'experiments[{index}]': {name!r} is reserved for the results layout "
                f"(reserved: {', '.join(sorted(RESERVED_NAMES))})"
            )
    for index, name in enumerate(config["experiments"]):
        path = _recipe_file(recipes_dir, "experiments", name, f"{source}: field 'experiments[{index}]'")
        plan.experiments[name] = load_experiment(path, recipes_dir)
    return plan


def load_any(path: Path, recipes_dir: Path | None = None) -> str:
    """Validate one file of any kind (config or recipe), telling its kind by its folder or content.

    Returns a one-line description of what was checked.
    """
    path = Path(path)
    folder = path.resolve().parent.name
    data = load_yaml(path)
    fields = set(data) if isinstance(data, dict) else set()
    if recipes_dir is None:
        beside = path.resolve().parents[1]
        recipes_dir = beside if (beside / "services").is_dir() else PROJECT_ROOT / "recipes"
    if folder == "experiments" or (folder not in ("services", "clients") and {"service", "client"} & fields):
        exp = load_experiment(path, recipes_dir)
        return f"{path}: experiment, {len(exp.points)} points"
    is_service = folder == "services" or (
        folder != "clients" and "kind" in fields and data["kind"] in SERVICES.names()
    )
    if is_service:
        return f"{path}: service recipe, kind {load_service(path).kind}"
    if folder == "clients" or "kind" in fields:
        return f"{path}: client recipe, kind {load_client(path).kind}"
    load_plan(data, str(path), recipes_dir.parent, [path])
    return f"{path}: config"
