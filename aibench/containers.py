"""Apptainer: a service command run inside its image, with binds, --cleanenv and an env file.

The environment a service needs (which may hold secrets) goes into a 0600 env file passed with
--env-file, never onto the command line. Images given as docker:// references are pulled once
into ``image_dir`` as SIF files and reused.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aibench.files import write_text
from aibench.images import in_image
from aibench.paths import expand_env
from aibench.services.base import Command


def sif_path(image: str, image_dir: str | os.PathLike[str]) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", image.split("://", 1)[-1]).strip("_")
    return Path(image_dir) / f"{name}.sif"


def resolve_image(image: str, settings: Mapping[str, Any], log: Callable[[str], Any] = print) -> str:
    """A local SIF for ``image`` when an image_dir is set (pulled there if missing), else ``image``."""
    image_dir = settings.get("image_dir")
    if not image_dir or "://" not in image:
        return image
    sif = sif_path(image, expand_env(image_dir, "apptainer.image_dir"))
    if not sif.exists():
        # pulled under a name of its own, then renamed into place (atomic on one filesystem): service
        # jobs starting at once (replicas, deployments in parallel) each pull, none finds a half-written
        # SIF, and `apptainer pull` never meets an existing file (it refuses to overwrite one)
        sif.parent.mkdir(parents=True, exist_ok=True)
        partial = sif.with_name(f".{sif.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
        log(f"pulling {image} into {sif}")
        try:
            subprocess.run([settings.get("binary", "apptainer"), "pull", str(partial), image], check=True)
            os.replace(partial, sif)
        finally:
            partial.unlink(missing_ok=True)
    return str(sif)


def apptainer_command(
    command: Command,
    image: str,
    settings: Mapping[str, Any],
    binds: list[Path],
    env_file: Path,
    gpus: int = 0,
    reference: str | None = None,
    log: Callable[[str], Any] = print,
) -> Command:
    """``command`` as it runs in ``image`` under Apptainer: the one way the service job runs anything
    in an image (the service, its steps, its exporters). A ``docker://`` image is pulled into the SIF
    cache first when one is set (``settings['image_dir']``, :func:`resolve_image`); ``reference`` names
    the image a given SIF was pulled from. The program is called by the path the image keeps it at
    (aibench.images), the host's PATH never helps; the environment goes into the 0600 ``env_file``."""
    write_text(env_file, "".join(f"{k}={v}\n" for k, v in sorted(command.env.items())), perms=0o600)
    program = in_image(reference or image, command.argv[0])
    argv = [settings.get("binary", "apptainer"), "exec", "--cleanenv", "--env-file", str(env_file)]
    for bind in binds:
        argv += ["--bind", str(bind)]
    if gpus:
        argv.append("--nv")
    argv += list(settings.get("args", []))
    argv.append(resolve_image(image, settings, log))
    return Command([*argv, program, *command.argv[1:]])
