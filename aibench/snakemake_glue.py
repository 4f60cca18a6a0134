"""Small helpers shared by the rule scripts in scripts/ (which stay thin glue)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any


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


def service_dir_of(path: str | os.PathLike[str]) -> Path:
    """The service directory holding a service file (handle.json, ready.json, ...)."""
    return Path(path).parent


def config_files(workflow: object) -> list[Path]:
    """The config files of a Snakemake run, lowest precedence first (Snakefile's, then --configfile)."""
    cli = [Path(f) for f in getattr(workflow.config_settings, "configfiles", [])]  # type: ignore[attr-defined]
    own = [Path(f) for f in workflow.configfiles if Path(f) not in cli]  # type: ignore[attr-defined]
    return own + cli


def config_overrides(workflow: object) -> dict[str, Any]:
    """The ``--config NAME=VALUE`` values of a Snakemake run (parsed), to tell them from file settings."""
    settings = getattr(workflow, "config_settings", None)
    return dict(getattr(settings, "config", None) or {})


def grafana_deployment(plan: Any, monitor_ready: str | os.PathLike[str]) -> dict[str, Any]:
    """lifecycle.deploy arguments of the run's Grafana: its recipe, pointed at the run's Prometheus
    (known only once that has started: its ready.json). No targets: Grafana is not a benchmarked service."""
    from aibench.files import read_json

    recipe = _grafana_recipe()
    ready = read_json(monitor_ready)
    params = {**recipe.params, "prometheus_url": f"http://{ready['host']}:{ready['port']}",
              "scrape_interval_s": plan.monitoring["scrape_interval_s"]}  # fmt: skip
    return {"params": params, "grace_s": recipe.stop_grace_s, "image": recipe.image}


def grafana_readiness() -> tuple[float, float]:
    """(timeout_s, interval_s) of the Grafana recipe's readiness."""
    recipe = _grafana_recipe()
    return recipe.ready_timeout_s, recipe.ready_interval_s


def _grafana_recipe() -> Any:
    from aibench.paths import PROJECT_ROOT
    from aibench.recipes import load_service

    return load_service(PROJECT_ROOT / "recipes" / "services" / "grafana.yaml")
