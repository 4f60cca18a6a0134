"""What every client kind provides: run one point's load against an endpoint."""

from __future__ import annotations

from typing import Any, ClassVar

from aibench.results.schema import PointResult


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
