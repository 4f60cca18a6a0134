"""What every client kind provides: run one point's load against an endpoint."""

from __future__ import annotations

import subprocess
from typing import Any, ClassVar

from aibench.errors import ClientError
from aibench.results.schema import PointResult
from aibench.secrets import mask, mask_argv


def run_tool(argv: list[str], timeout_s: float, secret_values: list[str]) -> str:
    """Run a load tool to completion within ``timeout_s``; its stdout, or a ClientError naming the
    command (secrets masked), the exit status and the end of its stderr."""
    shown = " ".join(mask_argv(argv, secret_values))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ClientError(f"{argv[0]} ran past its time limit of {timeout_s:g} s: {shown}") from None
    if done.returncode != 0 or not done.stdout.strip():
        stderr = mask(done.stderr, secret_values).strip()
        raise ClientError(f"{argv[0]} failed (exit {done.returncode}): {stderr[-2000:]}\ncommand: {shown}")
    return done.stdout


class ClientKind:
    """Base of a load generator; subclasses register with ``CLIENTS.register``."""

    name: ClassVar[str]
    params_schema: ClassVar[str]
    #: the service kinds this client can drive
    services: ClassVar[tuple[str, ...]] = ()
    #: secrets this client needs (names in the service's secrets file)
    secret_names: ClassVar[tuple[str, ...]] = ()
    #: parameters the prepare step depends on: fixed per experiment, never swept
    prepare_params: ClassVar[tuple[str, ...]] = ()
    #: programs the client runs (besides the project's Python): the rule image (envs/aibench.def)
    #: must hold each, since on MeluXina the client runs inside it (tests check the built image)
    tools: ClassVar[tuple[str, ...]] = ()

    def prepare(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> str | None:
        """Once per deployment, before the first point (e.g. loading test data); None = nothing to do."""
        return None

    def run(
        self,
        endpoint: dict[str, Any],
        secrets: dict[str, str],
        params: dict[str, Any],
        timeout_s: float,
    ) -> PointResult:
        raise NotImplementedError
