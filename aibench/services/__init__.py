"""Service kinds, one module each, registered by name."""

from aibench.registry import Registry
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

SERVICES: Registry[ServiceKind] = Registry(
    "service kind",
    modules=[
        "aibench.services.redis",
        "aibench.services.prometheus",
        "aibench.services.llamacpp",
        "aibench.services.vllm",
        "aibench.services.ollama",
    ],
)

__all__ = ["SERVICES", "Command", "Exporter", "ServiceContext", "ServiceKind"]
