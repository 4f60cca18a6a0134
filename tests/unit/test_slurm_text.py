"""Generated SLURM job scripts and Apptainer command lines, checked as text (no Apptainer exists here)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aibench.containers import apptainer_command, sif_path
from aibench.contracts import Placement, Runtime
from aibench.launchers.slurm import job_script
from aibench.recipes import load_config
from aibench.services.base import Command
from aibench.slurm_settings import launch_settings_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/meluxina.yaml keeps images in ${AIBENCH_SCRATCH}, which must be set to load it."""
    monkeypatch.setenv("AIBENCH_SCRATCH", "/project/scratch/p200999/u100")


def meluxina_config() -> dict:
    import yaml

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return load_config(
        {**base, **yaml.safe_load((ROOT / "config" / "meluxina.yaml").read_text())}, "meluxina"
    )


def test_job_script_from_recipe_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBENCH_ACCOUNT", "p200999")
    monkeypatch.delenv("AIBENCH_MODULES", raising=False)  # the config's module lines
    settings = launch_settings_for(
        meluxina_config(), {"cpus": 8, "mem_mb": 64000, "time_min": 90, "gpus": 2, "partition": "gpu"}
    )
    options = settings.launcher_options
    script = job_script(
        ["/venv/bin/python", "-m", "aibench.serve", "/r/exp/service/spec.json"],
        Path("/r/exp/service/service.log"),
        "aibench-exp-ollama",
        options,
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash -l"
    for expected in (
        "#SBATCH --job-name=aibench-exp-ollama",
        "#SBATCH --output=/r/exp/service/service.log",
        "#SBATCH --account=p200999",
        "#SBATCH --partition=gpu",  # the recipe's partition wins over the run's default (cpu)
        "#SBATCH --qos=default",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64000",
        "#SBATCH --time=90",
        "#SBATCH --gres=gpu:2",
        "module load env/release/2024.1",
        "module load Apptainer/1.3.6-GCCcore-13.3.0",
        "exec /venv/bin/python -m aibench.serve /r/exp/service/spec.json",
    ):
        assert expected in lines, expected
    assert lines.index("module load env/release/2024.1") < lines.index(
        "module load Apptainer/1.3.6-GCCcore-13.3.0"
    )
    assert settings.bind_host == "auto" and settings.runtime.name == "apptainer" and settings.gpus == 2


def test_no_account_is_invented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIBENCH_ACCOUNT", raising=False)
    monkeypatch.delenv("SLURM_ACCOUNT", raising=False)
    options = launch_settings_for(meluxina_config(), {}).launcher_options
    script = job_script(["true"], Path("/l"), "j", options)
    assert "--account" not in script
    assert "--gres" not in script


def test_values_are_shell_quoted() -> None:
    script = job_script(
        ["/a b/python", "x;y"], Path("/r d/log"), "job name", {"resources": {"partition": "p"}}
    )
    assert "#SBATCH --output='/r d/log'" in script
    assert "exec '/a b/python' 'x;y'" in script


def test_local_launcher_settings_bind_loopback() -> None:
    config = load_config({"experiments": ["x"]}, "test")
    settings = launch_settings_for(config, {"cpus": 4})
    assert settings == Placement(
        launcher="local",
        runtime=Runtime("native", config["apptainer"]),
        bind_host="127.0.0.1",
        gpus=0,
    )
    assert settings.launcher_options == {}  # no SLURM options for the local launcher


def test_apptainer_command_line(tmp_path: Path) -> None:
    env_file = tmp_path / "service.env"
    command = Command(["redis-server", "/r/x/service/redis.conf"], env={"REDIS_PASSWORD": "s3cret-value"})
    wrapped = apptainer_command(
        command,
        "/scratch/images/redis_7-alpine.sif",
        {"binary": "apptainer", "args": ["--bind", "/etc/ssl/certs"]},
        [Path("/r/x/service")],
        env_file,
        gpus=1,
    )
    assert wrapped.argv[:5] == ["apptainer", "exec", "--cleanenv", "--env-file", str(env_file)]
    assert wrapped.argv[5:7] == ["--bind", "/r/x/service"]
    assert "--nv" in wrapped.argv
    assert wrapped.argv[-3:] == [
        "/scratch/images/redis_7-alpine.sif",
        "redis-server",
        "/r/x/service/redis.conf",
    ]
    assert "s3cret-value" not in " ".join(wrapped.argv)  # secrets only in the 0600 env file
    assert env_file.read_text() == "REDIS_PASSWORD=s3cret-value\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    no_gpu = apptainer_command(Command(["x"]), "img", {}, [], env_file)
    assert "--nv" not in no_gpu.argv


def test_sif_names() -> None:
    assert sif_path("docker://redis:7-alpine", "/s") == Path("/s/redis_7-alpine.sif")
    assert sif_path("docker://vllm/vllm-openai:v0.6.0", "/s") == Path("/s/vllm_vllm-openai_v0.6.0.sif")


def test_client_placement_options(tmp_path: Path) -> None:
    from aibench.slurm_settings import placement_option

    ready = tmp_path / "ready.json"
    ready.write_text('{"host": "10.0.0.5", "port": 40001, "node": "mel0123"}')
    assert placement_option(ready, "same-node") == "--nodelist=mel0123"
    assert placement_option(ready, "other-node") == "--exclude=mel0123"
    ready.write_text('{"host": "127.0.0.1", "port": 40001}')
    assert placement_option(ready, "other-node") == ""


def test_account_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from aibench.errors import ConfigError

    monkeypatch.setenv("AIBENCH_ACCOUNT", "p200999\n#SBATCH --qos=urgent")
    with pytest.raises(ConfigError, match=r"\$AIBENCH_ACCOUNT: .* is not a SLURM account name"):
        launch_settings_for(meluxina_config(), {})
    monkeypatch.setenv("AIBENCH_ACCOUNT", "p200999")
    assert launch_settings_for(meluxina_config(), {}).launcher_options["resources"]["account"] == "p200999"


def test_modules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """MeluXina's module lines unless $AIBENCH_MODULES says otherwise (the test cluster: none)."""
    from aibench.errors import ConfigError
    from aibench.slurm_settings import modules

    config = meluxina_config()
    monkeypatch.delenv("AIBENCH_MODULES", raising=False)
    assert modules(config) == ["env/release/2024.1", "Apptainer/1.3.6-GCCcore-13.3.0"]
    monkeypatch.setenv("AIBENCH_MODULES", "")
    assert modules(config) == []
    monkeypatch.setenv("AIBENCH_MODULES", "env/release/2023.1 Apptainer/1.2.4")
    assert modules(config) == ["env/release/2023.1 Apptainer/1.2.4"]
    monkeypatch.setenv("AIBENCH_MODULES", "Apptainer;rm -rf /")
    with pytest.raises(ConfigError, match=r"\$AIBENCH_MODULES: 'Apptainer;rm'"):
        modules(config)


def test_client_partition_follows_a_same_node_service() -> None:
    """A client beside a GPU service asks for the gpu partition: its node is in no other."""
    from types import SimpleNamespace

    from aibench.slurm_settings import client_partition_for

    config = meluxina_config()
    gpu_service = SimpleNamespace(resources={"partition": "gpu", "gpus": 1})
    same = SimpleNamespace(placement="same-node", service=gpu_service)
    other = SimpleNamespace(placement="other-node", service=gpu_service)
    plain = SimpleNamespace(placement="same-node", service=SimpleNamespace(resources={}))
    assert client_partition_for(config, same) == "gpu"
    assert client_partition_for(config, other) == "cpu"
    assert client_partition_for(config, plain) == "cpu"


def test_effective_profile_settings() -> None:
    """What runs is what the chosen profile says: no workflow profile (profiles/default) is loaded
    beside the Snakefile to override it key by key (snakemake --workflow-profile)."""
    import os

    from snakemake.cli import parse_args

    assert not (ROOT / "profiles" / "default").exists()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        _, local = parse_args(["--profile", "profiles/local"])
        _, meluxina = parse_args(["--profile", "profiles/meluxina"])
    finally:
        os.chdir(cwd)
    # 3 job slots over the machine's 2 CPUs, which are local_cpu (rules/client.smk): only the local
    # profile limits it, so on SLURM a figure on the login node never waits for a compute node's load
    assert local.latency_wait == 5 and local.cores == 3 and not local.executor
    assert local.resources["local_cpu"].value == 2 and "local_cpu" not in meluxina.resources
    assert meluxina.latency_wait == 120 and meluxina.executor == "slurm" and meluxina.jobs == 20
    assert meluxina.workflow_profile is None
    resources = " ".join(str(r) for r in meluxina.default_resources)
    assert "slurm_qos" not in resources and "slurm_partition" not in resources  # from config/meluxina.yaml


def test_every_job_has_a_time_limit() -> None:
    """Service jobs without a time_min get their experiment's planned time; Prometheus/Grafana the
    run's: SLURM ends a forgotten job, and none asks for the partition's maximum by default."""
    from types import SimpleNamespace

    from aibench.slurm_settings import JOB_MARGIN_MIN, monitoring_minutes, planned_minutes, with_time_limit

    exp = SimpleNamespace(
        service=SimpleNamespace(ready_timeout_s=60), client=SimpleNamespace(timeout_s=300), points=[1, 2, 3]
    )
    assert planned_minutes(exp) == 1 + 20 + JOB_MARGIN_MIN  # readiness + (3 points + prepare) x 5 min
    assert monitoring_minutes([exp, exp], serial=True) == 2 * planned_minutes(exp) + JOB_MARGIN_MIN
    # side by side, the loads still take turns (one load slot): the whole run's plan
    assert monitoring_minutes([exp, exp], serial=False) == 2 * planned_minutes(exp) + JOB_MARGIN_MIN
    from aibench.slurm_settings import service_minutes

    assert service_minutes(exp, [exp, exp], serial=True) == planned_minutes(exp)
    assert service_minutes(exp, [exp, exp], serial=False) == 2 * planned_minutes(exp) + JOB_MARGIN_MIN
    # a service sweep of 4 deployments: one at a time, each job waits for no sibling's loads; two at
    # a time, for one sibling's; beside another experiment, for all of that one's too
    swept = SimpleNamespace(**vars(exp), deployments=[1, 2, 3, 4], parallel_deployments=1)
    assert service_minutes(swept, [swept, exp], serial=True) == planned_minutes(exp)
    assert service_minutes(swept, [swept, exp], serial=False) == 2 * planned_minutes(exp) + JOB_MARGIN_MIN
    swept.parallel_deployments = 2
    assert service_minutes(swept, [swept, exp], serial=True) == 2 * planned_minutes(exp) + JOB_MARGIN_MIN
    assert monitoring_minutes([swept, exp], serial=True) == 5 * planned_minutes(exp) + JOB_MARGIN_MIN
    assert with_time_limit({"cpus": 2}, 42) == {"cpus": 2, "time_min": 42}
    assert with_time_limit({"time_min": 120}, 42)["time_min"] == 120  # the recipe's own wins


def test_a_recipe_without_time_min_gets_the_planned_time() -> None:
    """The schema fills no time_min: a recipe that sets none gets its experiment's planned time (a
    default of 120 min would end a long sweep's service job in the middle of it)."""
    from aibench.recipes import load_experiment
    from aibench.slurm_settings import planned_minutes, with_time_limit

    exp = load_experiment(ROOT / "recipes" / "experiments" / "redis-default.yaml", ROOT / "recipes")
    assert "time_min" not in exp.service.resources
    assert with_time_limit(exp.service.resources, planned_minutes(exp))["time_min"] == planned_minutes(exp)
