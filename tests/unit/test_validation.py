"""Schema validation: every shipped file is valid; malformed files get precise messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from aibench.errors import ConfigError
from aibench.recipes import load_any, load_experiment, load_plan
from aibench.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "recipes" / "experiments"


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    """A copy of the project's recipes that a test may break."""
    target = tmp_path / "recipes"
    shutil.copytree(ROOT / "recipes", target)
    return target


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_every_shipped_file_is_valid() -> None:
    files = [ROOT / "config" / "config.yaml", *sorted((ROOT / "recipes").glob("*/*.yaml"))]
    assert len(files) >= 5
    for path in files:
        assert load_any(path)


def test_defaults_are_filled_in(recipes: Path) -> None:
    exp = load_experiment(recipes / "experiments" / "redis-default.yaml", recipes)
    assert exp.repeats == 1
    assert exp.service.ready_timeout_s == 30
    assert exp.client.params["keyspace"] == 100000
    assert exp.service.params["maxmemory_policy"] == "noeviction"


GOOD_EXPERIMENT = {
    "service": "redis",
    "client": "redis-benchmark",
    "sweep": {"clients": [1, 10]},
}

# (what is broken, file (relative to recipes/ or "config"), content, expected fragments of the message)
MALFORMED = [
    (
        "config without experiments",
        "config",
        {"results": "r"},
        ["field '(top level)'", "'experiments' is a required property"],
    ),
    (
        "experiments not a list",
        "config",
        {"experiments": "redis-default"},
        ["field 'experiments'", "is not of type 'array'"],
    ),
    (
        "unknown config key",
        "config",
        {"experiments": ["redis-default"], "experimnts": 1},
        ["field '(top level)'", "unknown field(s) 'experimnts'", "allowed:"],
    ),
    (
        "scrape interval too small",
        "config",
        {"experiments": ["redis-default"], "monitoring": {"scrape_interval_s": 0.1}},
        ["field 'monitoring.scrape_interval_s'", "less than the minimum of 0.5"],
    ),
    (
        "shell in experiment name",
        "config",
        {"experiments": ["x; rm -rf /"]},
        ["field 'experiments[0]'", "does not match the allowed form"],
    ),
    (
        "missing experiment recipe",
        "config",
        {"experiments": ["nope"]},
        [
            "field 'experiments[0]'",
            "no experiment recipe 'nope'",
            f"available: {', '.join(sorted(p.stem for p in EXPERIMENTS.glob('*.yaml')))}",
        ],
    ),
    (
        "reserved experiment name",
        "config",
        {"experiments": ["monitoring"]},
        ["field 'experiments[0]'", "reserved"],
    ),
    (
        "unknown launcher",
        "config",
        {"experiments": ["redis-default"], "launcher": "pbs"},
        ["field 'launcher'", "'pbs' is not one of ['local', 'slurm']"],
    ),
    (
        "unknown service kind",
        "services/redis.yaml",
        {"kind": "memcached"},
        [
            "services/redis.yaml: field 'kind'",
            "unknown service kind 'memcached'",
            f"known: {', '.join(sorted(SERVICES.names()))}",
        ],
    ),
    (
        "service param of wrong type",
        "services/redis.yaml",
        {"kind": "redis", "params": {"io_threads": "four"}},
        ["field 'params.io_threads'", "'four' is not of type 'integer'"],
    ),
    (
        "negative readiness timeout",
        "services/redis.yaml",
        {"kind": "redis", "readiness": {"timeout_s": -1}},
        ["field 'readiness.timeout_s'", "less than or equal to the minimum of 0"],
    ),
    (
        "unknown service param",
        "services/redis.yaml",
        {"kind": "redis", "params": {"save": "60 1"}},
        ["field 'params'", "unknown field(s) 'save'"],
    ),
    (
        "zero clients",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "params": {"clients": 0}},
        ["clients/redis-benchmark.yaml: field 'params.clients'", "less than the minimum of 1"],
    ),
    (
        "shell in tests",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "params": {"tests": "get;flushall"}},
        ["field 'params.tests'", "'get;flushall' does not match"],
    ),
    (
        "unknown client kind",
        "clients/redis-benchmark.yaml",
        {"kind": "wrk"},
        ["field 'kind'", "unknown client kind 'wrk'"],
    ),
    (
        "experiment without client",
        "experiments/redis-default.yaml",
        {"service": "redis"},
        ["experiments/redis-default.yaml: field '(top level)'", "'client' is a required property"],
    ),
    (
        "negative sweep value",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": [1, -5]}},
        ["field 'sweep.clients[1]'", "-5 is less than the minimum of 1"],
    ),
    (
        "sweep of unknown parameter",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"bogus": [1]}},
        ["field 'sweep.bogus'", "not a parameter of client kind 'redis-benchmark'"],
    ),
    (
        "zero repeats",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "repeats": 0},
        ["field 'repeats'", "less than the minimum of 1"],
    ),
    (
        "override of wrong type",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "client_params": {"pipeline": "16x"}},
        ["field 'client_params.pipeline'", "'16x' is not of type 'integer'"],
    ),
    (
        "missing service recipe",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service": "nope"},
        ["field 'service'", "no service recipe 'nope'"],
    ),
    (
        "empty sweep list",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": []}},
        ["field 'sweep.clients'", "should be non-empty"],
    ),
    (
        "duplicate sweep values",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": [5, 5]}},
        ["field 'sweep.clients'", "non-unique"],
    ),
    (
        "YAML syntax error",
        "experiments/redis-default.yaml",
        "service: redis\nclient: [unclosed\n",
        ["experiments/redis-default.yaml: not valid YAML (line"],
    ),
    (
        "empty file",
        "experiments/redis-default.yaml",
        "",
        ["expected a mapping of fields at the top level, found empty"],
    ),
    (
        "unauthenticated service on another node",
        "experiments/redis-default.yaml",
        {"service": "ollama", "client": "llm", "placement": "other-node"},
        ["field 'placement'", "no authentication"],
    ),
]


@pytest.mark.parametrize(("what", "where", "content", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_gives_precise_error(
    recipes: Path, what: str, where: str, content: object, expected: list[str]
) -> None:
    if where == "config":
        config_file = write(recipes.parent / "config.yaml", content)
    else:
        write(recipes / where, content)
        config_file = write(recipes.parent / "config.yaml", {"experiments": ["redis-default"]})
    data = yaml.safe_load(config_file.read_text())
    if isinstance(data, dict):
        data["recipes"] = str(recipes)
    with pytest.raises(ConfigError) as info:
        load_plan(data, str(config_file), recipes.parent)
    message = str(info.value)
    expected_file = str(config_file) if where == "config" else str(recipes / where)
    assert message.startswith(expected_file + ":"), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_malformed_count() -> None:
    assert len(MALFORMED) >= 10


def test_prepared_data_parameters_cannot_be_swept(recipes: Path) -> None:
    experiment = {"service": "mysql", "client": "sysbench", "sweep": {"table_size": [100, 1000]}}
    path = write(recipes / "experiments" / "db.yaml", experiment)
    with pytest.raises(ConfigError, match=r"field 'sweep.table_size'.*cannot be swept"):
        load_experiment(path, recipes)
