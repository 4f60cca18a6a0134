"""Inputs from an outside corpus (issue 13): files that are not files, hangs, values that are each valid
but wrong together, and command-line values. Each is refused with a message naming the file (or option)
and field, quickly, before anything starts; the classes are tested on every load path."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aibench.cli import main
from aibench.errors import ConfigError
from aibench.recipes import load_plan
from aibench.recipes.loader import load_config, plan_summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of the recipes and a config naming redis-default."""
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"experiments": ["redis-default"]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan(project: Path, config: dict | None = None, overrides: dict | None = None) -> object:
    data = {"experiments": ["redis-default"], **(config or {}), "recipes": str(project / "recipes")}
    return load_plan(data, "config.yaml", project, [project / "config.yaml"], overrides)


def special(path: Path, what: str) -> None:
    """Replace ``path`` by something that is not a readable YAML file."""
    path.unlink(missing_ok=True)
    if what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        path.mkdir()
    elif what == "symlink loop":
        path.symlink_to(path)
    elif what == "binary":
        path.write_bytes(bytes(range(256)))
    elif what == "utf-16":
        path.write_text("service: redis\nclient: redis-benchmark\n", encoding="utf-16")
    elif what == "oversize":
        path.write_bytes(b"# padding\n" * 200_000)  # 2 MB: more than a recipe may be
    else:
        raise AssertionError(what)


SPECIAL = {
    "fifo": "is not a regular file (a FIFO, socket or device)",
    "directory": "is a directory, not a file",
    "symlink loop": "cannot be read (Too many levels of symbolic links)",
    "binary": "is not UTF-8 text (byte 128",
    "utf-16": "is not UTF-8 text (byte 0: b'\\xff'",
    "oversize": "is 2000000 bytes, more than the 1048576 it may have",
}


@pytest.mark.parametrize("what", SPECIAL)
@pytest.mark.parametrize(
    "recipe", ["experiments/redis-default.yaml", "services/redis.yaml", "clients/redis-benchmark.yaml"]
)
def test_a_recipe_that_is_not_a_yaml_file_is_named(project: Path, recipe: str, what: str) -> None:
    path = project / "recipes" / recipe
    special(path, what)
    with pytest.raises(ConfigError) as info:
        plan(project)
    assert str(info.value) == f"{path}: {SPECIAL[what]}" or str(info.value).startswith(
        f"{path}: {SPECIAL[what]}"
    )


@pytest.mark.parametrize("what", SPECIAL)
def test_a_config_file_that_is_not_a_yaml_file_is_named(project: Path, what: str) -> None:
    config = project / "config.yaml"
    special(config, what)
    with pytest.raises(ConfigError) as info:
        load_plan({"experiments": ["redis-default"]}, "--config", project, [config])
    assert str(info.value).startswith(f"{config}: {SPECIAL[what]}")


@pytest.mark.parametrize("what", SPECIAL)
def test_validate_names_the_file_and_never_blocks(project: Path, what: str) -> None:
    """`aibench validate` on each: exit 1 with the file named, within a bound (a FIFO used to block it)."""
    path = project / "x.yaml"
    special(path, what)
    done = subprocess.run(
        [sys.executable, "-m", "aibench.cli", "validate", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: {path}: {SPECIAL[what]}"), done.stderr
    assert "Traceback" not in done.stderr


def test_results_that_is_an_existing_file(project: Path) -> None:
    (project / "taken").write_text("not a directory\n")
    with pytest.raises(ConfigError, match=r"field 'results': 'taken' exists and is not a directory"):
        plan(project, {"results": "taken"})


def test_results_directory_writable_by_others(project: Path) -> None:
    shared = project / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(
        ConfigError, match=r"field 'results': 'shared' may be written by other users \(mode 777\)"
    ):
        plan(project, {"results": "shared"})
    shared.chmod(0o755)
    assert plan(project, {"results": "shared"})


def test_results_in_an_entry_of_its_own_inside_the_project_is_fine(project: Path) -> None:
    assert plan(project, {"results": "results"})
    assert plan(project, {"results": "runs/2026-12-02"})


def test_unknown_field_from_the_command_line_blames_the_command_line(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plan(project, {"bogus": 1}, overrides={"bogus": 1})
    assert str(info.value).startswith("--config: field '(top level)': unknown field(s) 'bogus'")
    with pytest.raises(ConfigError) as info:
        plan(project, {"slurm": {"bind": "0.0.0.0"}}, overrides={"slurm": {"bind": "0.0.0.0"}})
    assert str(info.value).startswith("--config: field 'slurm.bind'")


def test_unknown_field_from_a_file_blames_that_file(project: Path) -> None:
    config = project / "config.yaml"
    config.write_text("experiments: [redis-default]\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_plan(yaml.safe_load(config.read_text()), "--config", project, [config], {})
    assert str(info.value).startswith(f"{config}: field '(top level)': unknown field(s) 'bogus'")


def test_config_sharing_parts_beyond_the_limit_is_refused(project: Path) -> None:
    """What Snakemake's loader makes of an alias bomb in a --configfile: one list shared a billion
    times over. Validating it would walk every copy."""
    shared: list = ["x"] * 10
    for _ in range(8):
        shared = [shared] * 10
    with pytest.raises(ConfigError, match=r"the config expands to \d+ values, more than the 100000"):
        load_config({"experiments": ["redis-default"], "apptainer": {"args": shared}}, "--config")


def test_an_unset_variable_never_becomes_a_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIBENCH_SCRATCH", raising=False)
    with pytest.raises(ConfigError, match=r"field 'apptainer.image_dir': \$AIBENCH_SCRATCH is not set"):
        plan(project, {"apptainer": {"image_dir": "${AIBENCH_SCRATCH}/aibench/images"}})
    from aibench.containers import resolve_image

    with pytest.raises(ConfigError, match=r"apptainer.image_dir: \$AIBENCH_SCRATCH is not set"):
        resolve_image("docker://redis:7-alpine", {"image_dir": "${AIBENCH_SCRATCH}/images"})
    assert not list(project.glob("$*"))


def long_sweep(project: Path, hours: float) -> None:
    """An LLM experiment of 20 x 20 x 16 = 6,400 timed points of ``hours`` each."""
    (project / "recipes" / "clients" / "long.yaml").write_text(
        yaml.safe_dump(
            {"kind": "llm", "timeout_s": 86400, "params": {"requests": 0, "duration_s": hours * 3600}}
        )
    )
    sweep = {
        "concurrency": list(range(1, 21)),
        "max_tokens": list(range(1, 21)),
        "input_words": list(range(1, 17)),
    }
    (project / "recipes" / "experiments" / "huge.yaml").write_text(
        yaml.safe_dump({"service": "llamacpp", "client": "long", "sweep": sweep})
    )


def test_a_plan_beyond_the_time_budget_is_refused_with_its_duration(project: Path) -> None:
    long_sweep(project, 24)
    with pytest.raises(ConfigError) as info:
        plan(project, {"experiments": ["huge"]})
    message = str(info.value)
    assert message.startswith(f"{project / 'recipes' / 'experiments' / 'huge.yaml'}: field 'sweep': ")
    assert "its 6400 points take up to 153600.0 h" in message
    assert "more than the budget max_planned_hours = 168 h" in message


def test_the_budget_is_configurable_and_the_plan_states_its_duration(project: Path) -> None:
    long_sweep(project, 0.01)  # 6,400 points of 36 s: 64 h
    with pytest.raises(ConfigError, match=r"plan 64.0 h, more than the budget max_planned_hours = 10 h"):
        plan(project, {"experiments": ["huge"], "max_planned_hours": 10})
    accepted = plan(project, {"experiments": ["huge"]})
    assert plan_summary(accepted) == (
        "1 experiments, 6400 points; the loads take at most 64.00 h in all (budget: max_planned_hours 168 h)"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["tunnel", "grafana", "--local-port", "99999"],
            "argument --local-port: '99999' is not a TCP port (1-65535)",
        ),
        (["tunnel", "grafana", "--ssh-port", "-1"], "argument --ssh-port: '-1' is not a TCP port (1-65535)"),
    ],
)
def test_out_of_range_ports_are_refused(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("endpoint", [":99999", "127.0.0.1:0", ":6379", "host:port"])
def test_run_client_refuses_a_bad_endpoint(
    tmp_path: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run-client", "redis-benchmark", "--endpoint", endpoint, "--out", str(tmp_path / "o")])
    assert code == 2
    assert f"--endpoint {endpoint!r}: expected HOST:PORT, with a port of 1-65535" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "!!python/object/apply:os.system [id]",
            "--set clients: not valid YAML (line 1, column 1): could not determine",
        ),
        ("010", "--set clients: not valid YAML (line 1, column 1): '010' is read by YAML 1.1"),
        (
            "&a [*a]",
            "--set clients: not valid YAML (line 1, column 1): an alias refers to the node holding it",
        ),
    ],
)
def test_run_client_set_values_follow_the_recipes_yaml_rules(
    tmp_path: Path, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run-client", "redis-benchmark", "--endpoint", "127.0.0.1:1", "--out", str(tmp_path / "o"),
                 "--set", f"clients={value}"])  # fmt: skip
    assert code == 2
    assert expected in capsys.readouterr().err


def test_a_failed_run_client_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A load against a port nobody listens on fails, and the reason is printed (not only 'failed')."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    code = main(["run-client", "llm", "--endpoint", f"127.0.0.1:{port}", "--out", str(tmp_path / "o"),
                 "--set", "requests=2", "--set", "warmup_requests=0", "--timeout", "60"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "reason: 2 of 2 requests failed: " in err and "Connect" in err, err


def test_special_files_as_client_inputs_are_named(tmp_path: Path) -> None:
    from aibench.clients.llm.prompts import from_file as prompts_from
    from aibench.datasets.vectors import from_file

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"fifo \(dataset_file\): is not a regular file"):
        from_file(fifo, 0, 1)
    with pytest.raises(ConfigError, match=r"fifo \(prompt_file\): is not a regular file"):
        prompts_from(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
