"""Malformed input stops the real workflow while it is parsed: `snakemake -n` and a real run both exit
non-zero with the precise message (file and field), and nothing is started, submitted or created."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import snakemake

pytestmark = pytest.mark.workflow

SMALL = {
    "service": "redis",
    "client": "redis-benchmark",
    "client_params": {"tests": "get", "requests": 1000},
    "sweep": {"clients": [1, 2]},
}
UP = "../" * 40  # from the repository, up to the filesystem root


def bad_type(make_config: Callable[..., Path], workspace: Path, marker: Path) -> tuple[Path, str]:
    config = make_config({**SMALL, "repeats": "two"})
    recipe = workspace / "recipes" / "experiments" / "redis-e2e.yaml"
    return config, f"{recipe}: field 'repeats': 'two' is not of type 'integer'"


def shell_in_name(make_config: Callable[..., Path], workspace: Path, marker: Path) -> tuple[Path, str]:
    name = f"redis-e2e; touch {marker} $(touch {marker}) `touch {marker}`"
    config = make_config(SMALL, experiments=[name])
    return config, f"{config}: field 'experiments[0]': {name!r} does not match the allowed form"


def results_escaping(make_config: Callable[..., Path], workspace: Path, marker: Path) -> tuple[Path, str]:
    results = UP + "etc/aibench-results"
    config = make_config(SMALL, results=results)
    return (
        config,
        f"{config}: field 'results': {results!r} (/etc/aibench-results) is in the system directory /etc",
    )


@pytest.mark.parametrize("broken", [bad_type, shell_in_name, results_escaping], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_malformed_input_stops_before_anything(
    make_config: Callable[..., Path],
    workspace: Path,
    no_leftovers: float,
    broken: Callable[..., tuple[Path, str]],
    dry_run: bool,
) -> None:
    marker = workspace / "PWNED"
    config, expected = broken(make_config, workspace, marker)
    done = snakemake(config, *(["-n"] if dry_run else []), timeout=300)
    output = done.stderr + done.stdout
    assert done.returncode != 0, output[-3000:]
    assert expected in output, output[-3000:]
    for rule in ("deploy_service", "deploy_monitor", "run_client"):
        assert f"rule {rule}" not in output and f"localrule {rule}" not in output
    assert not (workspace / "results").exists()
    assert not Path("/etc/aibench-results").exists()
    assert not marker.exists()


def unknown_command_line_field(
    make_config: Callable[..., Path], workspace: Path
) -> tuple[Path, list[str], str]:
    return (
        make_config(SMALL),
        ["--config", "bogus=1"],
        "--config: field '(top level)': unknown field(s) 'bogus'",
    )


def alias_bomb_configfile(make_config: Callable[..., Path], workspace: Path) -> tuple[Path, list[str], str]:
    config = make_config(SMALL)
    levels = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    bomb = workspace / "bomb.yaml"
    bomb.write_text(f"a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n{levels}apptainer: {{args: *a8}}\n")
    return config, ["--configfile", str(bomb)], f"{bomb}: field '(top level)': YAML document expands to"


def yte_configfile(make_config: Callable[..., Path], workspace: Path) -> tuple[Path, list[str], str]:
    config = make_config(SMALL)
    yte = workspace / "yte.yaml"
    yte.write_text("__use_yte__: true\nserial_experiments: true\n")
    return config, ["--configfile", str(yte)], f"{yte}: field '__use_yte__': YTE templating is refused"


@pytest.mark.parametrize(
    "broken", [unknown_command_line_field, alias_bomb_configfile, yte_configfile], ids=lambda f: f.__name__
)
def test_command_line_and_extra_config_files_are_checked_too(
    make_config: Callable[..., Path],
    workspace: Path,
    no_leftovers: float,
    broken: Callable[..., tuple[Path, list[str], str]],
) -> None:
    config, extra, expected = broken(make_config, workspace)
    done = snakemake(config, "-n", *extra, timeout=300)
    output = done.stderr + done.stdout
    assert done.returncode != 0, output[-3000:]
    assert expected in output, output[-3000:]
    assert "rule deploy_service" not in output and not (workspace / "results").exists()
