"""Prometheus file_sd targets: one JSON file per exporter of a running service."""

from __future__ import annotations

import os
from pathlib import Path

from aibench.files import write_json


def write_target(
    targets_dir: str | os.PathLike[str], name: str, address: str, labels: dict[str, str]
) -> Path:
    path = Path(targets_dir) / f"{name}.json"
    write_json(path, [{"targets": [address], "labels": {k: str(v) for k, v in labels.items()}}])
    return path


def remove_targets(targets_dir: str | os.PathLike[str], names: list[str]) -> None:
    for name in names:
        (Path(targets_dir) / f"{name}.json").unlink(missing_ok=True)
