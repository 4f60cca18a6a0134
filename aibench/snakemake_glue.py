"""Small helpers shared by the rule scripts in scripts/ (which stay thin glue)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


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
