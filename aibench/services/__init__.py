"""Service kinds, one module each, registered by name."""

from aibench.registry import Registry
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

SERVICES: Registry[ServiceKind] = Registry(
    "service kind",
    modules={
        "redis": "aibench.services.redis",
        "prometheus": "aibench.services.prometheus",
        "llamacpp": "aibench.services.llamacpp",
        "vllm": "aibench.services.vllm",
        "ollama": "aibench.services.ollama",
        "mysql": "aibench.services.mysql",
        "chroma": "aibench.services.chroma",
        "grafana": "aibench.services.grafana",
    },
)

__all__ = ["SERVICES", "Command", "Exporter", "ServiceContext", "ServiceKind"]
