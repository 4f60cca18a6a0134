"""Small helpers shared by the rule scripts in scripts/ (which stay thin glue)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from aibench.contracts import DeploymentSpec, Placement


def script_logger(log_files: list[str] | None, name: str) -> logging.Logger:
    """A logger writing to the rule's log file (and stderr), with timestamps."""
    logger = logging.getLogger(f"aibench.{name}")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for log_file in log_files or []:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def config_files(workflow: object) -> list[Path]:
    """The config files of a Snakemake run, lowest precedence first (Snakefile's, then --configfile)."""
    cli = [Path(f) for f in getattr(workflow.config_settings, "configfiles", [])]  # type: ignore[attr-defined]
    own = [Path(f) for f in workflow.configfiles if Path(f) not in cli]  # type: ignore[attr-defined]
    return own + cli


def config_overrides(workflow: object) -> dict[str, Any]:
    """The ``--config NAME=VALUE`` values of a Snakemake run (parsed), to tell them from file settings."""
    settings = getattr(workflow, "config_settings", None)
    return dict(getattr(settings, "config", None) or {})


def grafana_deployment(
    plan: Any, monitor_ready: str | os.PathLike[str], placement: Placement
) -> DeploymentSpec:
    """The run's Grafana: its recipe, pointed at the run's Prometheus (known only once that has
    started: its ready.json). No targets: Grafana is not a benchmarked service."""
    from aibench.files import read_json

    recipe = plan.monitors["grafana"]
    ready = read_json(monitor_ready)
    params = {**recipe.params, "prometheus_url": f"http://{ready['host']}:{ready['port']}",
              "scrape_interval_s": plan.monitoring["scrape_interval_s"]}  # fmt: skip
    return DeploymentSpec(
        experiment="grafana", kind="grafana", params=params, placement=placement,
        grace_s=recipe.stop_grace_s, image=recipe.image,
    )  # fmt: skip


def grafana_readiness(plan: Any) -> tuple[float, float]:
    """(timeout_s, interval_s) of the run's Grafana recipe's readiness."""
    recipe = plan.monitors["grafana"]
    return recipe.ready_timeout_s, recipe.ready_interval_s
