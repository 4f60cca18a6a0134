"""Load config and recipes, validate each against its schema, and expand experiments into points.

Everything here runs when the workflow is parsed, so a bad file stops the run before anything
starts; every error names the file and the field.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibench.clients import CLIENTS
from aibench.errors import ConfigError
from aibench.names import name_problem
from aibench.paths import PROJECT_ENTRIES, PROJECT_ROOT, env_problem, schema_path
from aibench.recipes.sweep import Point, combinations, deployment_id, expand
from aibench.recipes.validation import (
    MAX_NODES,
    check,
    control_character,
    describe,
    expanded_count,
    field_path,
    load_yaml,
    validate,
)
from aibench.rundir import RunDir
from aibench.services import SERVICES

#: names of results/ entries that are not experiments (the results layout's own)
RESERVED_NAMES = RunDir.ENTRIES
#: longest file name and path Linux takes (NAME_MAX, PATH_MAX)
NAME_MAX, PATH_MAX = 255, 4096
#: most points one experiment may expand to (each is a workflow job and a load run)
MAX_POINTS = 10000
#: the experiment field (and service-sweep name) of how many service jobs serve one deployment
REPLICAS = "replicas"
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
class Deployment:
    """One combination of an experiment's service sweep: the service deployed with these values, the
    experiment's whole client sweep run against it, the service stopped. An experiment without a
    service sweep has one, with no id."""

    experiment: str
    #: None for an experiment's only deployment, else its readable id (``io_threads-2``)
    id: str | None
    #: the service with this deployment's parameters and resources
    service: ServiceRecipe
    #: the service parameters and resources the sweep set for it
    swept: dict[str, Any] = field(default_factory=dict)
    #: how many service jobs of this configuration serve its points (``replicas``)
    replicas: int = 1

    @property
    def unit(self) -> str:
        """Its directory in the results, relative to their root: ``<experiment>`` or
        ``<experiment>/<id>`` (rundir.RunDir.service and .point take it)."""
        return self.experiment if self.id is None else f"{self.experiment}/{self.id}"

    @property
    def replica_numbers(self) -> list[int | None]:
        """Its service jobs: one (None: ``<unit>/service``), or replicas 0..N-1 (``service-r<n>``)."""
        return [None] if self.replicas == 1 else list(range(self.replicas))


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
    service_sweep: dict[str, list[Any]] = field(default_factory=dict)
    link: list[list[str]] = field(default_factory=list)
    #: one per service-sweep combination, in sweep order (one, with no id, without a service sweep)
    deployments: list[Deployment] = field(default_factory=list)
    parallel_deployments: int = 1
    #: how many client nodes load each point at once (aibench.clients.fanout)
    client_nodes: int = 1

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
    #: the recipes of the run's own services (prometheus; grafana when enabled), from the recipes
    #: directory the config names: their resources, readiness and image come from there
    monitors: dict[str, ServiceRecipe] = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return Path(self.config["results"])

    @property
    def monitoring(self) -> dict[str, Any]:
        return self.config["monitoring"]

    @property
    def deployments(self) -> dict[str, Deployment]:
        """Every deployment of the run by its unit (``<experiment>`` or ``<experiment>/<id>``), in
        the run's order."""
        return {d.unit: d for exp in self.experiments.values() for d in exp.deployments}


def _defines(path: Path, field: list[Any], value: Any) -> bool:
    """True when the YAML file ``path`` sets ``field`` to ``value``."""
    try:
        node = load_yaml(path)
        for element in field:
            node = node[element]
        return bool(node == value)
    except (ConfigError, KeyError, IndexError, TypeError):
        return False


def _lookup(data: Any, elements: list[Any]) -> tuple[bool, Any]:
    for element in elements:
        try:
            data = data[element]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def _setter(
    elements: list[Any],
    value: Any,
    source: str,
    files: list[Path] | tuple[Path, ...],
    overrides: dict[str, Any] | None = None,
) -> str:
    """Who set field ``elements`` to ``value``: ``--config`` (which wins over every file) when it did,
    else the last of ``files`` that does, else ``source``."""
    found, given = _lookup(overrides or {}, elements)
    if elements and found and given == value:
        return "--config"
    where = next(
        (str(f) for f in reversed(files) if elements and _defines(Path(f), elements, value)),
        None,
    )
    return where or (str(files[-1]) if files and not elements else source)


def _blamed_field(error: Any) -> tuple[list[Any], Any]:
    """The field an error is about and its value; for an unknown field, the first unknown one (so the
    file or --config setting it is found)."""
    elements = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            return [*elements, extra[0]], error.instance[extra[0]]
    return elements, error.instance


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry
        return None


def _path_form_problem(results: str, normal: Path) -> str | None:
    """A results path the filesystem cannot take, or that exists as something else than a directory
    (or as one other users may write to)."""
    if len(os.fsencode(normal)) > PATH_MAX:
        return f"{results!r} is longer than the {PATH_MAX} bytes a path may have"
    long = next((part for part in normal.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:
        size = len(os.fsencode(long))
        return f"{results!r} has a component of {size} bytes ({long[:20]}...), more than {NAME_MAX}"
    try:
        info = normal.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink loop, no permission
        return f"{results!r} cannot be used ({exc.strerror or exc})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{results!r} exists and is not a directory"
    if info.st_mode & 0o022:
        return (
            f"{results!r} may be written by other users (mode {stat.S_IMODE(info.st_mode):o}): on a shared "
            "system they could replace the run's files; `chmod go-w` it or give another directory"
        )
    return None


def _inside_project_problem(shown: str, path: Path, workflow_dir: str | Path) -> str | None:
    """A results directory inside the project must sit in an entry of its own (results/, runs/...),
    not in the project's files (recipes/, .git/, ...)."""
    root = Path(workflow_dir).resolve()
    if root not in path.parents:
        return None
    first = path.relative_to(root).parts[0]
    if first in PROJECT_ENTRIES or first.startswith("."):
        return (
            f"{shown} is inside the project's own {first!r} ({root / first}); results belong in a "
            "directory of their own (the default: results/)"
        )
    return None


def results_problem(results: str, workflow_dir: str | Path) -> str | None:
    """Why ``results`` (relative to the working directory) cannot hold a run's results, or None.

    Anywhere else is fine (scratch on HPC): the run writes its experiments' folders, tables and
    figures into the directory, so it must be one of its own - not the filesystem root, a top-level
    or system directory, the home directory, the working or workflow directory or one holding them,
    nor one of the project's own directories; not a file, nor a directory other users may write to.
    """
    normal = Path(os.path.abspath(results))
    problem = _path_form_problem(results, normal)
    if problem is not None:
        return problem
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
        problem = _inside_project_problem(shown, path, workflow_dir)
        if problem is not None:
            return problem
    return None


def load_config(
    data: Any,
    source: str,
    files: list[Path] | tuple[Path, ...] = (),
    workflow_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate a config mapping, filling in defaults.

    ``data`` may merge several ``files`` (lowest precedence first) and ``overrides`` (``--config``
    values); an error names ``--config`` when it set the offending field, else the last file that sets
    it to the offending value, else ``source``. With ``workflow_dir``, the results directory is
    checked too (:func:`results_problem`).
    """
    if not isinstance(data, dict):
        return validate(data, "config", source)
    for path in files:  # the merged mapping no longer shows a field set twice in one file
        load_yaml(path)
    size = expanded_count(data)
    if size > MAX_NODES:  # shared parts (aliases) walked each time they appear: a validator would hang
        raise ConfigError(
            f"{source}: the config expands to {size} values, more than the {MAX_NODES} it may have"
        )
    data = copy.deepcopy(data)
    for checker in (lambda d: check(d, "config"), control_character, _config_value_error):
        error = checker(data)  # in turn: each later check relies on the schema's having passed
        if error is not None:
            where = _setter(*_blamed_field(error), source, files, overrides)
            raise ConfigError(f"{where}: field '{field_path(error)}': {describe(error)}")
    problem = None if workflow_dir is None else results_problem(data["results"], workflow_dir)
    if problem is not None:
        where = _setter(["results"], data["results"], source, files, overrides)
        raise ConfigError(f"{where}: field 'results': {problem}")
    return data


def _config_value_error(data: dict[str, Any]) -> Any:
    """What the schema cannot say about a valid config: addresses and paths that must make sense."""
    bind = data["slurm"]["bind"]
    problem = None if bind == "auto" else address_problem(bind, data["launcher"])
    if problem is not None:
        return _value_error(problem, ("slurm", "bind"), bind)
    image_dir = data["apptainer"]["image_dir"]
    problem = None if image_dir is None else env_problem(image_dir)
    if problem is not None:
        return _value_error(problem, ("apptainer", "image_dir"), image_dir)
    return None


def _value_error(message: str, path: tuple[Any, ...], instance: Any) -> Any:
    import jsonschema

    return jsonschema.ValidationError(message, validator="value", path=path, instance=instance)


def address_problem(address: str, launcher: str) -> str | None:
    """Why services cannot bind to ``address``, or None. Not every interface (0.0.0.0 would put the
    service on every network of its node), not multicast or broadcast; under SLURM not loopback
    (the workflow on the login node probes the service, and clients may run on other nodes)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address (or 'auto': the node's own address)"
    if ip.is_unspecified:
        return f"{address!r} would listen on every interface of the node; use 'auto' (the node's address)"
    if ip.is_multicast or address == "255.255.255.255":
        return f"{address!r} is a multicast or broadcast address, not one a service can listen on"
    if ip.is_loopback and launcher == "slurm":
        return (
            f"{address!r} is reachable on the service's own node only, but the workflow probes it from the "
            "login node and clients may run on other nodes; use 'auto'"
        )
    return None


def _recipe_file(recipes_dir: Path, folder: str, name: str, referrer: str) -> Path:
    path = recipes_dir / folder / f"{name}.yaml"
    if not os.path.lexists(path):  # anything else there (a directory, a FIFO...) load_yaml names
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
    readiness = data["readiness"]
    if readiness["interval_s"] > readiness["timeout_s"]:
        raise ConfigError(
            f"{path}: field 'readiness.interval_s': {readiness['interval_s']:g} s is longer than "
            f"readiness.timeout_s ({readiness['timeout_s']:g} s): the service would be probed once at most"
        )
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
                raise ConfigError(f"{path}: field 'sweep.{name}[{index}]': {_swept_detail(error, name)}")


def _swept_detail(error: Any, field_name: str) -> str:
    """What is wrong with a swept value: the schema's word on it, or on the other field a rule ties it to."""
    other = field_path(error)
    return describe(error) if other == field_name else f"with this value, field '{other}': {describe(error)}"


def _check_ids(sweep: dict[str, list[Any]], path: Path, section: str = "sweep") -> None:
    """Sweep values must give distinct ids (of points, or of deployments for the service sweep)."""
    what = "deployment" if section == "service_sweep" else "point"
    for name, values in sweep.items():
        seen: dict[str, Any] = {}
        for value in values:
            token = deployment_id({name: value})
            if token in seen:
                raise ConfigError(
                    f"{path}: field '{section}.{name}': values {seen[token]!r} and {value!r} give the "
                    f"same {what} id {token!r} (ids keep letters, digits, '.', '+' and '-'); make them "
                    "differ there"
                )
            seen[token] = value


def _check_points(sweep: dict[str, list[Any]], repeats: int, deployments: int, path: Path) -> None:
    """Sweep values must give distinct point ids, and not too many points."""
    _check_ids(sweep, path)
    count = math.prod(len(values) for values in sweep.values()) * repeats * deployments
    if count > MAX_POINTS:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in sweep.items())
        times = f" x {deployments} deployments" if deployments > 1 else ""
        raise ConfigError(
            f"{path}: field 'sweep': {sizes} x {repeats} repeats{times} make {count} points, more than "
            f"the {MAX_POINTS} one experiment may have"
        )


def _resource_names() -> list[str]:
    """The resources a service recipe may ask for (its schema's ``resources``)."""
    schema = load_yaml(schema_path("service"))
    return sorted(schema["properties"]["resources"]["properties"])


def _check_link(sweep: dict[str, list[Any]], link: list[list[str]], path: Path) -> None:
    """Every linked parameter is swept, in one group only, and a group's lists are of equal length."""
    owner: dict[str, int] = {}
    for index, group in enumerate(link):
        for name in group:
            if name not in sweep:
                raise ConfigError(
                    f"{path}: field 'link[{index}]': {name!r} is not in service_sweep (swept: "
                    f"{', '.join(sweep) or 'nothing'}); only swept parameters can be linked"
                )
            if name in owner:
                raise ConfigError(
                    f"{path}: field 'link[{index}]': {name!r} is linked in link[{owner[name]}] already; "
                    "a parameter belongs to one group (merge the groups)"
                )
            owner[name] = index
        lengths = {name: len(sweep[name]) for name in group}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"service_sweep.{name} has {n}" for name, n in lengths.items())
            raise ConfigError(
                f"{path}: field 'link[{index}]': linked lists must be of equal length, but {sizes} values"
            )


def _check_service_sweep(
    sweep: dict[str, list[Any]], service: ServiceRecipe, params: dict[str, Any], path: Path
) -> None:
    """Each swept name is a parameter of the service kind or a resource of its recipe, each value valid
    for it (with the experiment's other parameters)."""
    schema = SERVICES.get(service.kind).params_schema
    resources = _resource_names()
    for name, values in sweep.items():
        if name not in params and name not in resources and name != REPLICAS:
            raise ConfigError(
                f"{path}: field 'service_sweep.{name}': not a parameter of service kind {service.kind!r} "
                f"(known: {', '.join(sorted(params)) or 'none'}) nor a resource of its recipe "
                f"({', '.join(resources)}) nor {REPLICAS!r}"
            )
        for index, value in enumerate(values):
            if name == REPLICAS:
                error, field_name = (
                    check({"service": "s", "client": "c", REPLICAS: value}, "experiment"),
                    name,
                )
            elif name in params:
                error, field_name = check({**params, name: value}, schema), name
            else:
                recipe = {"kind": service.kind, "resources": {**service.resources, name: value}}
                error, field_name = check(recipe, "service"), f"resources.{name}"
            if error is not None:
                detail = _swept_detail(error, field_name)
                raise ConfigError(f"{path}: field 'service_sweep.{name}[{index}]': {detail}")


def _deployments(
    name: str,
    data: dict[str, Any],
    service: ServiceRecipe,
    params: dict[str, Any],
    path: Path,
    client_kind: str,
) -> list[Deployment]:
    """The experiment's deployments: one per service-sweep combination (one, with no id, without a
    service sweep), each with its parameters and resources checked together."""
    sweep, link = data["service_sweep"], data["link"]
    if REPLICAS in sweep and data[REPLICAS] != 1:
        raise ConfigError(
            f"{path}: field '{REPLICAS}': {data[REPLICAS]} replicas, but service_sweep.{REPLICAS} sets them "
            "per deployment; give one of the two"
        )
    _check_service_sweep(sweep, service, params, path)
    _check_link(sweep, link, path)
    _check_ids(sweep, path, "service_sweep")
    deployments = []
    for swept in combinations(sweep, link):
        merged = {**params, **{k: v for k, v in swept.items() if k in params}}
        resources = {
            **service.resources,
            **{k: v for k, v in swept.items() if k not in params and k != REPLICAS},
        }
        recipe = ServiceRecipe(**{**service.__dict__, "params": merged, "resources": resources})
        ident = deployment_id(swept) if swept else None
        _check_path_params(recipe, data["service_params"], merged, path, swept, ident)
        replicas = swept.get(REPLICAS, data[REPLICAS])
        if replicas > 1:
            _check_replicable(service, client_kind, path, REPLICAS in swept)
        deployments.append(Deployment(name, ident, recipe, swept, replicas))
    return deployments


def _check_replicable(service: ServiceRecipe, client: str, path: Path, swept: bool) -> None:
    """Replicas need a stateless service kind and a client that spreads its load over them."""
    where = f"{path}: field '{'service_sweep.' if swept else ''}{REPLICAS}'"
    kind = SERVICES.get(service.kind)
    if not kind.stateless:
        raise ConfigError(
            f"{where}: service kind {service.kind!r} keeps data of its own, so replicas would not serve "
            "one load alike; replicas are for stateless kinds (the LLM servers)"
        )
    if kind.loopback_only:  # each replica its own job, maybe on another node than the client's
        raise ConfigError(
            f"{where}: service kind {service.kind!r} listens on its node's loopback only, so a client "
            "could reach one replica at most; replicas are for kinds that listen on the node's address "
            "(llamacpp, vllm)"
        )
    if not CLIENTS.get(client).spreads_over_replicas:
        raise ConfigError(f"{where}: client kind {client!r} cannot spread a load over replicas")


def _param_setter(name: str, path: Path, section: str, overrides: dict[str, Any], recipe: Path) -> str:
    """``<file>: field '<field>'`` of a merged parameter: the experiment's override when it sets it,
    else the service or client recipe's own."""
    if name in overrides:
        return f"{path}: field '{section}.{name}'"
    return f"{recipe}: field 'params.{name}'"


def _check_point_params(points: list[Point], data: dict[str, Any], client: ClientRecipe, path: Path) -> None:
    """Every point's parameters together (beyond the schema, which sees one value at a time)."""
    kind = CLIENTS.create(client.kind)
    nodes = data["client_nodes"]
    if nodes > 1 and not kind.multi_node:
        able = ", ".join(n for n in CLIENTS.names() if CLIENTS.get(n).multi_node)
        raise ConfigError(f"{path}: field 'client_nodes': client kind {client.kind!r} runs from one node "
                          f"only (client_nodes is for: {able})")  # fmt: skip
    for point in points:
        problem = kind.params_problem(point.params, client.timeout_s)
        if problem is None and nodes > 1:
            problem = kind.nodes_problem(point.params, nodes)
            if problem is not None:
                problem = problem[0], f"{problem[1]} (client_nodes: {nodes})"
        if problem is None:
            continue
        names, why = problem
        swept = next((n for n in names if n in point.swept), None)
        if swept is not None:
            raise ConfigError(f"{path}: field 'sweep.{swept}': at point {point.id}: {why}")
        name = next((n for n in names if n in data["client_params"]), names[0])
        where = _param_setter(name, path, "client_params", data["client_params"], client.file)
        raise ConfigError(f"{where}: {why}")


def _check_path_params(
    service: ServiceRecipe,
    overrides: dict[str, Any],
    params: dict[str, Any],
    path: Path,
    swept: dict[str, Any] | None = None,
    deployment: str | None = None,
) -> None:
    """A path parameter's environment variables must be set (else they would stay literal names);
    the parameters must make sense together (of a service-sweep ``deployment``: its ``swept`` values
    are then named)."""

    def where(name: str, resources: bool = False) -> str:
        if swept and name not in swept and resources:  # a swept resource it does not fit
            name = next((k for k in swept if k in service.resources), name)
        if swept and name in swept:
            return f"{path}: field 'service_sweep.{name}': at deployment {deployment}"
        return _param_setter(name, path, "service_params", overrides, service.file)

    for name in SERVICES.get(service.kind).path_params:
        value = params.get(name)
        problem = env_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise ConfigError(f"{where(name)}: {problem}")
    kind = SERVICES.create(service.kind)
    together = kind.params_problem(params)  # values right alone, wrong together
    if together is not None:
        raise ConfigError(f"{where(together[0])}: {together[1]}")
    fit = kind.resources_problem(params, service.resources)
    if fit is not None:
        raise ConfigError(f"{where(fit[0], resources=True)}: {fit[1]}")


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

    deployments = _deployments(path.stem, data, service, service_params, path, client.kind)
    _check_points(data["sweep"], data["repeats"], len(deployments), path)
    try:
        points = expand(client_params, data["sweep"], data["repeats"])
    except ValueError as exc:  # ids colliding across swept parameters
        raise ConfigError(f"{path}: field 'sweep': {exc}") from None
    if data["client_nodes"] > 1 and SERVICES.get(service.kind).loopback_only:
        raise ConfigError(
            f"{path}: field 'client_nodes': service kind {service.kind!r} listens on its node's loopback "
            "only, so a client on another node cannot reach it"
        )
    _check_point_params(points, data, client, path)
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
        service_sweep=data["service_sweep"],
        link=data["link"],
        deployments=deployments,
        parallel_deployments=data["parallel_deployments"],
        client_nodes=data["client_nodes"],
    )


def load_plan(
    config: Any,
    source: str,
    workflow_dir: str | Path,
    files: list[Path] | tuple[Path, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> Plan:
    """Validate ``config`` (read from ``files`` and ``overrides``, else ``source``) and every recipe it
    uses; expand points; refuse a plan beyond the run's time budget."""
    config = load_config(config, source, files, workflow_dir, overrides)
    recipes_dir = Path(config["recipes"])
    if not recipes_dir.is_absolute():
        recipes_dir = Path(workflow_dir) / recipes_dir
    if not recipes_dir.is_dir():
        raise ConfigError(f"{source}: field 'recipes': directory {recipes_dir} does not exist")
    plan = Plan(config=config, recipes_dir=recipes_dir)
    for index, name in enumerate(config["experiments"]):
        problem = name_problem("experiment", name)
        if problem is not None:
            where = _setter(["experiments", index], name, source, files, overrides)
            raise ConfigError(f"{where}: field 'experiments[{index}]': {problem}")
    for index, name in enumerate(config["experiments"]):
        path = _recipe_file(recipes_dir, "experiments", name, f"{source}: field 'experiments[{index}]'")
        plan.experiments[name] = load_experiment(path, recipes_dir)
    for exp in plan.experiments.values():
        _check_launcher_fit(exp, config)
    monitoring = config["monitoring"]
    wanted = ["prometheus", "grafana"] if monitoring["grafana"] else ["prometheus"]
    for kind in wanted if monitoring["enabled"] else []:
        path = _recipe_file(recipes_dir, "services", kind, f"{source}: field 'monitoring'")
        plan.monitors[kind] = load_service(path)
    _check_budget(plan, source, files, overrides)
    return plan


def _check_launcher_fit(exp: Experiment, config: dict[str, Any]) -> None:
    gpus = max(d.service.resources.get("gpus", 0) for d in exp.deployments)
    if gpus and config["launcher"] == "local":
        where = (
            f"{exp.file}: field 'service_sweep.gpus'"
            if "gpus" in exp.service_sweep
            else (f"{exp.service.file}: field 'resources.gpus'")
        )
        raise ConfigError(
            f"{where}: {gpus} GPU(s) asked for, but the local launcher "
            "neither allocates nor isolates GPUs (the service would share whatever this machine has); "
            "run it with launcher: slurm, or set gpus: 0"
        )


def planned_seconds(exp: Experiment) -> float:
    """The longest an experiment's points may take in all (each at its own duration or time limit), on
    every deployment."""
    kind = CLIENTS.create(exp.client.kind)
    one = sum(kind.planned_seconds(p.params, exp.client.timeout_s) for p in exp.points)
    return one * len(exp.deployments)


def plan_summary(plan: Plan) -> str:
    """One line for the user before anything starts: what the run will do, and its longest duration."""
    points = sum(len(e.points) * len(e.deployments) for e in plan.experiments.values())
    hours = sum(planned_seconds(e) for e in plan.experiments.values()) / 3600
    deployments = len(plan.deployments)
    counted = f", {deployments} deployments" if deployments > len(plan.experiments) else ""
    return (
        f"{len(plan.experiments)} experiments{counted}, {points} points; the loads take at most "
        f"{hours:.2f} h in all "
        f"(budget: max_planned_hours {plan.config['max_planned_hours']:g} h)"
    )


def _check_budget(
    plan: Plan, source: str, files: list[Path] | tuple[Path, ...], overrides: dict[str, Any] | None
) -> None:
    budget = float(plan.config["max_planned_hours"])
    planned = {name: planned_seconds(e) / 3600 for name, e in plan.experiments.items()}
    total = sum(planned.values())
    if total <= budget:
        return
    largest = max(planned, key=lambda name: planned[name])
    exp = plan.experiments[largest]
    count = sum(len(e.points) * len(e.deployments) for e in plan.experiments.values())
    setter = _setter(["max_planned_hours"], plan.config["max_planned_hours"], source, files, overrides)
    raise ConfigError(
        f"{exp.file}: field 'sweep': its {len(exp.points) * len(exp.deployments)} points take up to "
        f"{planned[largest]:.1f} h (each "
        f"at its load's duration or timeout_s); the run's {count} points plan {total:.1f} h, more than "
        f"the budget max_planned_hours = {budget:g} h ({setter}): "
        "shrink the sweep or raise the budget"
    )


def load_any(path: Path, recipes_dir: Path | None = None) -> str:
    """Validate one file of any kind (config or recipe), telling its kind by its folder or content.

    Returns a one-line description of what was checked.
    """
    path = Path(path)
    data = load_yaml(path)  # first: a FIFO, a symlink loop... is refused before anything resolves it
    folder = path.resolve().parent.name
    fields = set(data) if isinstance(data, dict) else set()
    if recipes_dir is None:
        beside = path.resolve().parents[1]
        recipes_dir = beside if (beside / "services").is_dir() else PROJECT_ROOT / "recipes"
    if folder == "experiments" or (folder not in ("services", "clients") and {"service", "client"} & fields):
        exp = load_experiment(path, recipes_dir)
        if len(exp.deployments) > 1:
            return f"{path}: experiment, {len(exp.deployments)} deployments x {len(exp.points)} points"
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
