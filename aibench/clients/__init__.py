"""Client kinds (load generators), one module each, registered by name."""

from aibench.clients.base import ClientKind
from aibench.registry import Registry

CLIENTS: Registry[ClientKind] = Registry(
    "client kind",
    modules={
        "redis-benchmark": "aibench.clients.redis_benchmark",
        "llm": "aibench.clients.llm",
        "sysbench": "aibench.clients.sysbench",
        "chroma": "aibench.clients.chroma",
    },
)

__all__ = ["CLIENTS", "ClientKind"]
