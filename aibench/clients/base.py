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

    def run(
        self,
        endpoint: dict[str, Any],
        secrets: dict[str, str],
        params: dict[str, Any],
        timeout_s: float,
    ) -> PointResult:
        raise NotImplementedError
