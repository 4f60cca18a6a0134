"""No recipe value can inject shell.

Two lines of defence, each tested on its own:

1. The schemas: every string a recipe or config may set is an enum, or a pattern that refuses shell
   metacharacters, except the few listed in FREE_STRINGS, which never reach a command (checked
   below). The loader also refuses control characters (tests/unit/test_validation.py).
2. The code: nothing is run through a shell. Service and client commands are argv lists; the SLURM job
   script, the one shell script generated, quotes every value. Here the schemas are bypassed and
   values full of shell syntax are fed straight to every service kind, the clients that run tools,
   the launchers and the job script generator; the commands are run (with a harmless program in place
   of the real binary) and each value must arrive as one argument, untouched, with nothing executed.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aibench.clients import CLIENTS
from aibench.clients import base as client_base
from aibench.clients.redis_benchmark import command_line
from aibench.containers import apptainer_command
from aibench.launchers.local import LocalLauncher
from aibench.launchers.slurm import job_script
from aibench.monitoring.dashboards import DASHBOARDS_DIR
from aibench.recipes.validation import check
from aibench.rundir import ServiceDir
from aibench.serve import _start, gateway_command
from aibench.services import SERVICES
from aibench.services.base import Command, ServiceContext

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "config" / "schemas"
#: prints its arguments as JSON: stands in for the real binary of a command
PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"
#: programs that would read an argument as shell code
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish"}
#: shell syntax no schema pattern may let through
METACHARACTERS = [";", "$(", "`", "|", "&", ">", "<", " ", "'", '"', "\\", "\n", "*", "?", "~", "!", "#"]

#: strings without a shell-safe pattern, and why that is safe (each is checked not to reach a command)
FREE_STRINGS = {
    "description": "free text for reports and manifests",
    "targets_dir": "the prometheus kind's file_sd directory, set by the workflow; goes to yaml.safe_dump",
    "prometheus_url": "the grafana kind's datasource URL, set by the deploy rule; goes to yaml.safe_dump",
    "sweep.*[]": "each swept value is checked against the client kind's own schema",
    "service_sweep.*[]": "each value is checked against the service kind's schema or the recipe's resources",
}
#: metacharacters a field's syntax needs, and why that is safe
ALLOWED = {
    "slurm.modules[]": ({" "}, "several modules per line: split on spaces, each shell-quoted"),
    "resources.constraint": ({"&", "|"}, "SLURM's constraint syntax; only in a quoted #SBATCH comment line"),
}


def _string_fields(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, subschema) of every string-typed field in a schema."""
    if not isinstance(schema, dict):
        return
    types = schema.get("type", [])
    if "string" in (types if isinstance(types, list) else [types]):
        yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _string_fields(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _string_fields(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from _string_fields(schema["items"], f"{path}[]")
    for keyword in ("then", "else"):
        if keyword in schema:
            yield from _string_fields(schema[keyword], path)


def recipe_schemas() -> list[Path]:
    names = ["config", "service", "client", "experiment"]
    return [SCHEMAS / f"{n}.schema.yaml" for n in names] + sorted((SCHEMAS / "kinds").glob("*.yaml"))


def test_every_recipe_string_is_an_enum_or_refuses_shell_syntax() -> None:
    unsafe = []
    checked = 0
    for path in recipe_schemas():
        for field, sub in _string_fields(yaml.safe_load(path.read_text()), ""):
            if "enum" in sub or "const" in sub:
                continue
            if field.rsplit(".", 1)[-1] in FREE_STRINGS or field in FREE_STRINGS:
                continue
            checked += 1
            pattern = sub.get("pattern")
            if pattern is None:
                unsafe.append(f"{path.name}: {field}: no pattern")
                continue
            allowed = ALLOWED.get(field, (set(), ""))[0]
            # (a trailing newline passes any `...$` pattern: the loader refuses control characters)
            for char in set(METACHARACTERS) - allowed:
                if re.search(pattern, f"a{char}b"):
                    unsafe.append(f"{path.name}: {field}: pattern {pattern!r} lets {char!r} through")
    assert checked >= 25
    assert not unsafe, "\n".join(unsafe)


@pytest.fixture
def mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where an injected command would leave a file: every payload touches mark-<something>, a name
    relative to the working directory (tmp_path), so payloads fit in file names too."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / f"PWNED-{uuid.uuid4().hex}"


def payload(mark: Path, what: str) -> str:
    """A value made of shell syntax: each form, run by a shell, would create a file beside ``mark``."""
    target = f"{mark.name}-{what}"
    return (
        f"x; touch {target}-semicolon $(touch {target}-dollar) `touch {target}-backtick` "
        f"' ; touch {target}-quote ; ' | touch {target}-pipe && touch {target}-and > {target}-redirect\n"
        f"touch {target}-newline"
    )


def assert_nothing_ran(mark: Path) -> None:
    left = sorted(p.name for p in mark.parent.glob(f"{mark.name}*"))
    assert not left, f"a payload was executed: {left}"


def run_argv(argv: list[str], tmp_path: Path) -> list[str]:
    """``argv`` started the way the service job starts commands (aibench.serve), with a program
    printing its arguments in place of argv[0]; returns the arguments it received."""
    out = tmp_path / f"argv-{uuid.uuid4().hex}.json"
    with open(out, "w") as handle:
        proc = _start(Command([sys.executable, "-c", PRINT_ARGV, *argv[1:]]), stdout=handle)
        assert proc.wait(30) == 0
    return json.loads(out.read_text())


def assert_whole(commands: list[Command], values: dict[str, str]) -> list[str]:
    """Every command is an argv list of strings, none a shell's script; a value in it is one element
    (or inside one). Returns the names of the values found in some argv.
    """
    found = []
    for command in commands:
        assert isinstance(command.argv, list) and all(type(a) is str for a in command.argv), command
        assert all(type(k) is str and type(v) is str for k, v in command.env.items()), command
        pairs = itertools.pairwise(command.argv)
        assert not any(Path(a).name in SHELLS and b.startswith("-") and "c" in b for a, b in pairs), command
        for name, value in values.items():
            token = re.search(r"PWNED-[0-9a-f]{32}-[\w-]+", value).group()  # type: ignore[union-attr]
            holding = [a for a in command.argv if token in a]
            for element in holding:
                assert value in element, f"{name} split across argv elements: {command.argv}"
            if holding:
                found.append(name)
    return found


def kind_params(kind: Any, mark: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The kind's default params, every string replaced by a payload (bypassing the schema)."""
    params: dict[str, Any] = {"targets_dir": str(tmp_path / "targets")} if kind.name == "prometheus" else {}
    assert check(params, kind.params_schema) is None
    schema = yaml.safe_load((SCHEMAS / f"{kind.params_schema}.schema.yaml").read_text())
    injected: dict[str, str] = {}
    for name, sub in schema.get("properties", {}).items():
        types = sub.get("type", [])
        if "string" in (types if isinstance(types, list) else [types]):
            injected[name] = payload(mark, f"{kind.name}-{name}")
    if "model_path" in injected:  # llamacpp: the model file must exist
        model = tmp_path / f"model $(touch {mark.name}-model) `touch {mark.name}-model`; x.gguf"
        model.write_bytes(b"GGUF")
        injected["model_path"] = str(model)
    if "dashboards_dir" in injected:  # grafana: the dashboards are copied from there
        dashboards = tmp_path / f"dashboards $(touch {mark.name}-dash); x"
        shutil.copytree(DASHBOARDS_DIR, dashboards)
        injected["dashboards_dir"] = str(dashboards)
    if "prometheus_url" in injected:
        injected["prometheus_url"] = f"http://prom:9090/$(touch {mark.name}-url);`touch {mark.name}-url`"
    return {**params, **injected}, injected


#: parameters each kind passes on its command lines (so the test sees them arrive whole)
IN_ARGV = {"ollama": {"model"}, "vllm": {"model", "model_alias", "model_cache"}}


def kind_commands(kind: Any, ctx: ServiceContext) -> list[Command]:
    commands = [*kind.prepare_commands(ctx), kind.command(ctx), *kind.setup_commands(ctx)]
    commands += [e.command for e in kind.exporters(ctx, [41001, 41002, 41003, 41004]) if e.command]
    if kind.gateway_secret:
        commands.append(gateway_command(ctx, ctx.secrets[kind.gateway_secret]))
    return commands


@pytest.mark.parametrize("name", SERVICES.names())
@pytest.mark.parametrize("containerized", [False, True], ids=["native", "apptainer"])
def test_service_kind_commands_keep_values_whole(
    name: str, containerized: bool, tmp_path: Path, mark: Path
) -> None:
    kind = SERVICES.create(name)
    params, injected = kind_params(kind, mark, tmp_path)
    workdir = tmp_path / f"work $(touch {mark.name}-workdir); `touch {mark.name}-workdir`"
    workdir.mkdir()
    secrets = {**kind.make_secrets({**params, "database": "sbtest"}), "MYSQL_DATABASE": "sbtest"}
    ctx = ServiceContext(
        experiment=payload(mark, "experiment"),
        params=params,
        secrets=secrets,
        host="127.0.0.1",
        port=41000,
        workdir=workdir,
        datadir=workdir / "data",
        backend_port=41005 if kind.gateway_secret else None,
        containerized=containerized,
    )
    commands = kind_commands(kind, ctx)
    if containerized:
        settings = {"binary": "apptainer", "args": ["--bind", "/etc/ssl/certs"]}
        wrapped = [
            apptainer_command(c, "image.sif", settings, [workdir], workdir / "x.env") for c in commands
        ]
        for inner, outer in zip(commands, wrapped, strict=True):
            assert outer.argv[-len(inner.argv) :] == inner.argv and not outer.env
        commands += wrapped
    values = {**injected, "workdir": str(workdir)}
    found = assert_whole(commands, values)
    assert set(found) >= IN_ARGV.get(name, set()) | {"workdir"}
    for free in set(FREE_STRINGS) & set(injected):
        assert free not in found and not any(injected[free] in v for c in commands for v in c.env.values())
    for command in commands:
        if any(value in a for value in values.values() for a in command.argv):
            assert run_argv(command.argv, tmp_path) == command.argv[1:]
    assert_nothing_ran(mark)


def test_redis_benchmark_gets_tests_as_one_argument(tmp_path: Path, mark: Path) -> None:
    params: dict[str, Any] = {}
    assert check(params, "kinds/redis-benchmark") is None
    params["tests"] = payload(mark, "tests")
    argv = command_line("127.0.0.1", 6379, "pass word;$(id)", params)
    assert argv[argv.index("-t") + 1] == params["tests"]
    assert_whole([Command(argv)], {"tests": params["tests"]})
    # the runner every tool-based client uses
    out = client_base.run_tool([sys.executable, "-c", PRINT_ARGV, *argv[1:]], 30, [])
    assert json.loads(out) == argv[1:]
    assert_nothing_ran(mark)


def test_sysbench_gets_its_test_as_one_argument(
    tmp_path: Path, mark: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysbench_module = sys.modules[type(CLIENTS.create("sysbench")).__module__]
    seen: list[list[str]] = []

    def run_tool(argv: list[str], timeout_s: float, secret_values: list[str], *how: Any) -> str:
        seen.append(argv)
        shown = [sys.executable, "-c", PRINT_ARGV, *argv[1:]]
        return client_base.run_tool(shown, timeout_s, secret_values, *how)

    monkeypatch.setattr(sysbench_module, "run_tool", run_tool)
    params: dict[str, Any] = {}
    assert check(params, "kinds/sysbench") is None
    params["test"] = payload(mark, "test")
    client = CLIENTS.create("sysbench")
    endpoint = {"host": "127.0.0.1", "port": 3306}
    out = client.prepare(endpoint, {"MYSQL_PASSWORD": "pw"}, params, 30)
    assert json.loads(out) == seen[0][1:] and params["test"] in seen[0]
    assert_nothing_ran(mark)


def test_local_launcher_passes_values_as_arguments(tmp_path: Path, mark: Path) -> None:
    values = [payload(mark, "local"), f"$(touch {mark.name}-second)", f"`touch {mark.name}-third`"]
    handle = LocalLauncher().start(
        [sys.executable, "-c", PRINT_ARGV, *values],
        service_dir=ServiceDir(tmp_path),
        job_name=payload(mark, "job"),
    )
    os.waitpid(handle.pid, 0)
    assert json.loads((tmp_path / "service.log").read_text()) == values
    assert_nothing_ran(mark)


def test_slurm_job_script_quotes_every_value(tmp_path: Path, mark: Path) -> None:
    """The generated batch script, run by bash (as the batch job would), passes every value through."""
    values = [payload(mark, "argv"), f"$(touch {mark.name}-second)", "it's", ""]
    job_name = f"aibench-x$(touch {mark.name}-name)`touch {mark.name}-name`;touch {mark.name}-name"
    options = {
        "resources": {
            "partition": f"cpu;touch {mark.name}-partition",
            "account": f"$(touch {mark.name}-account)",
            "time_min": 10,
        },
        "modules": [f"env/release$(touch {mark.name}-module) `touch {mark.name}-module2`;x"],
        "sbatch_extra": [f"--comment=$(touch {mark.name}-extra)"],
    }
    log = tmp_path / f"service $(touch {mark.name}-log).log"
    script = tmp_path / "service.sbatch"
    script.write_text(job_script([sys.executable, "-c", PRINT_ARGV, *values], log, job_name, options))
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # `module` is a shell function of the batch environment: here one recording its arguments
    modules = tmp_path / "modules.json"
    functions = tmp_path / "functions.sh"
    functions.write_text(
        f'module() {{ printf "%s\\0" "$@" >> {json.dumps(str(modules))}; }}\nhostname() {{ echo node1; }}\n'
    )
    env = {
        "PATH": os.environ["PATH"],
        "SLURM_JOB_ID": "42",
        "BASH_ENV": str(functions),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert first == f"[aibench job 42 on node1] {job_name}"
    assert json.loads(last) == values
    assert modules.read_text().split("\0")[:-1] == ["load", *options["modules"][0].split()]
    assert_nothing_ran(mark)


def test_no_code_runs_a_shell() -> None:
    """No Python of the project asks for a shell; the only shell directive of the workflow builds
    the shipped datasets from a corpus file name (a developer's target, never a recipe value)."""
    offences = []
    banned = {
        ("os", "system"),
        ("os", "popen"),
        ("subprocess", "getoutput"),
        ("subprocess", "getstatusoutput"),
        ("asyncio", "create_subprocess_shell"),
        ("pty", "spawn"),
    }
    files = [*(ROOT / "aibench").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            owner = (
                func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            )
            name = func.attr if isinstance(func, ast.Attribute) else ""
            shell = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                        for k in node.keywords)  # fmt: skip
            if shell or (owner, name) in banned:
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert len(files) > 30
    assert not offences, "\n".join(offences)
    shell_rules = [
        p.name for p in (ROOT / "rules").glob("*.smk") if re.search(r"^\s+shell:", p.read_text(), re.M)
    ]
    assert shell_rules == ["datasets.smk"]


def test_payloads_would_run_in_a_shell(tmp_path: Path, mark: Path) -> None:
    """The payloads are real: given to a shell, they do create the mark files the tests look for."""
    subprocess.run(f"echo {payload(mark, 'control')}", shell=True, cwd=tmp_path, check=False)
    deadline = time.monotonic() + 5
    while not list(tmp_path.glob(f"{mark.name}-control-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    made = {p.name.rsplit("-", 1)[-1] for p in tmp_path.glob(f"{mark.name}-control-*")}
    assert {"semicolon", "dollar", "backtick", "pipe", "and", "redirect", "newline"} <= made
