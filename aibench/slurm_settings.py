"""From the run's config and a service's resources to what the launcher and the SLURM plugin need."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from aibench.contracts import Placement, Runtime
from aibench.errors import ConfigError
from aibench.files import read_json

ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MODULE = re.compile(r"[A-Za-z0-9_./+-]{1,200}")


def account(config: dict[str, Any]) -> str | None:
    """The SLURM account: from the config, else $AIBENCH_ACCOUNT or $SLURM_ACCOUNT; never a default.

    One from the environment is checked here (the config's by its schema): it goes into job scripts."""
    if config["slurm"]["account"]:
        return config["slurm"]["account"]
    for name in ("AIBENCH_ACCOUNT", "SLURM_ACCOUNT"):
        value = os.environ.get(name)
        if value:
            if not ACCOUNT.fullmatch(value):
                raise ConfigError(f"${name}: {value!r} is not a SLURM account name (letters, digits, '_.-')")
            return value
    return None


def launch_settings_for(config: dict[str, Any], resources: dict[str, Any]) -> Placement:
    """Where a service with ``resources`` runs in this run: the part of lifecycle.deploy's spec that
    depends on the launcher (on SLURM: its resources, account, partition, QoS, modules)."""
    launcher = config["launcher"]
    placement = Placement(
        launcher=launcher,
        runtime=Runtime(config["service_runtime"], config["apptainer"]),
        bind_host="127.0.0.1" if launcher == "local" else config["slurm"]["bind"],
        gpus=resources.get("gpus", 0),
    )
    if launcher != "slurm":
        return placement
    slurm = config["slurm"]
    merged = {
        "account": account(config),
        "partition": slurm["partition"],
        "qos": slurm["qos"],
        **{k: v for k, v in resources.items() if k != "gpus"},
    }
    if resources.get("gpus"):
        merged["gres"] = f"gpu:{resources['gpus']}"
    options = {"resources": merged, "modules": modules(config), "sbatch_extra": slurm["sbatch_extra"]}
    return replace(placement, launcher_options=options)


#: minutes added to every planned job time: start-up, set-up, stop, slack for a slow filesystem
JOB_MARGIN_MIN = 10


def planned_minutes(experiment: Any) -> int:
    """The longest an experiment's deployment can be needed: its readiness timeout, then every point
    (and the prepare step) at its client's time limit, plus a margin. A service job without a
    `time_min` of its own gets this as --time, so SLURM ends a forgotten one."""
    seconds = experiment.service.ready_timeout_s + experiment.client.timeout_s * (len(experiment.points) + 1)
    return math.ceil(seconds / 60) + JOB_MARGIN_MIN


def _deployments(experiment: Any) -> int:
    return len(getattr(experiment, "deployments", ())) or 1


def service_minutes(experiment: Any, experiments: list[Any], serial: bool) -> int:
    """--time of one of an experiment's service jobs without a `time_min` of its own. Serial, one
    deployment at a time: its own plan. Deployments side by side (parallel_deployments) or experiments
    side by side (serial_experiments off): the loads still run one at a time (every profile has one
    `load_slots`), so its points may wait for every other deployment's: all of them are planned."""
    # its own experiment's deployments after it do not delay it; those running beside it may
    beside = min(getattr(experiment, "parallel_deployments", 1), _deployments(experiment))
    if serial and beside == 1:
        return planned_minutes(experiment)
    own = planned_minutes(experiment) * beside
    if serial:
        return own + JOB_MARGIN_MIN
    everything = sum(planned_minutes(e) * _deployments(e) for e in experiments)
    return everything - planned_minutes(experiment) * _deployments(experiment) + own + JOB_MARGIN_MIN


def monitoring_minutes(experiments: list[Any], serial: bool) -> int:
    """Prometheus and Grafana run for the whole run: every deployment's plan, one after another (the
    loads run one at a time either way), plus a margin."""
    return sum(planned_minutes(e) * _deployments(e) for e in experiments) + JOB_MARGIN_MIN


def with_time_limit(resources: dict[str, Any], minutes: int) -> dict[str, Any]:
    """``resources`` with --time set: the recipe's own time_min wins, else ``minutes``."""
    return {**resources, "time_min": resources.get("time_min") or minutes}


def client_partition_for(config: dict[str, Any], experiment: Any, service: Any = None) -> str:
    """The partition of an experiment's client jobs: the service's own partition (of ``service``, one
    deployment's, else the experiment's) when the client must share its node (a node belongs to its
    partitions only: sbatch refuses a --nodelist outside the partition asked for), else the run's."""
    run_partition = config["slurm"]["partition"] or ""
    if experiment.placement == "same-node":
        return (service or experiment.service).resources.get("partition") or run_partition
    return run_partition


def modules(config: dict[str, Any]) -> list[str]:
    """Module lines of service job scripts: $AIBENCH_MODULES (space-separated; empty for none) when
    set, else the config's. The test cluster has no `module` command; MeluXina needs them."""
    override = os.environ.get("AIBENCH_MODULES")
    if override is None:
        return list(config["slurm"]["modules"])
    names = override.split()
    bad = [n for n in names if not MODULE.fullmatch(n)]
    if bad:
        raise ConfigError(f"$AIBENCH_MODULES: {bad[0]!r} is not a module name (letters, digits, '_./+-')")
    return [" ".join(names)] if names else []


def placement_option(ready_json: str | os.PathLike[str], placement: str) -> str:
    """--nodelist (same node as the service) or --exclude (another node), from the service's ready.json."""
    node = read_json(Path(ready_json)).get("node")
    if not node:
        return ""
    return f"--nodelist={node}" if placement == "same-node" else f"--exclude={node}"
