"""Ollama (docker://ollama/ollama) on GPU nodes.

Ollama has no authentication of its own: the service binds 127.0.0.1 of its node whatever the run's
bind setting, so only clients on the same node (placement: same-node) reach it. The model is pulled
as a set-up step before readiness into a models directory on scratch (cached across runs); bind the
host's CA certificates (apptainer args) where TLS to the registry fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from aibench import probes
from aibench.paths import expand_env
from aibench.services import SERVICES
from aibench.services.base import Command, ServiceContext, ServiceKind


@SERVICES.register
class Ollama(ServiceKind):
    name = "ollama"
    params_schema = "kinds/ollama"
    binaries = ("ollama",)
    image = "docker://ollama/ollama:0.5.7"
    path_params = ("models_dir",)
    stateless = True
    #: no authentication exists: never bind anything but the node's loopback
    loopback_only = True

    def _env(self, ctx: ServiceContext) -> dict[str, str]:
        p = ctx.params
        env = {
            "OLLAMA_HOST": f"{ctx.host}:{ctx.port}",
            "OLLAMA_NUM_PARALLEL": str(p["num_parallel"]),
            "OLLAMA_MAX_LOADED_MODELS": str(p["max_loaded_models"]),
            "OLLAMA_KEEP_ALIVE": p["keep_alive"],
            "OLLAMA_MODELS": expand_env(p["models_dir"], "models_dir"),
        }
        if p["ca_bundle"]:
            env["SSL_CERT_FILE"] = p["ca_bundle"]
        return env

    def command(self, ctx: ServiceContext) -> Command:
        return Command(["ollama", "serve"], env=self._env(ctx))

    def cache_dirs(self, ctx: ServiceContext) -> list[Path]:
        return [Path(expand_env(ctx.params["models_dir"], "models_dir"))]

    def container_binds(self, ctx: ServiceContext) -> list[Path]:
        # only a bundle the user names: the image's own CA store otherwise
        return [Path(ctx.params["ca_bundle"])] if ctx.params["ca_bundle"] else []

    def setup_commands(self, ctx: ServiceContext) -> list[Command]:
        """Before readiness: pull the model (a no-op when it is in the models directory already)."""
        if not ctx.params["pull"]:
            return []
        return [Command(["ollama", "pull", ctx.params["model"]], env=self._env(ctx))]

    def endpoint_extra(self, ctx: ServiceContext) -> dict[str, Any]:
        return {"model": ctx.params["model"]}

    def process_pattern(self, ctx: ServiceContext) -> str:
        return "ollama serve"

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Ready = the model is listed (/api/tags) and answers one generation."""
        base = f"http://{endpoint['host']}:{endpoint['port']}"
        model = endpoint.get("model", "")
        try:
            tags = requests.get(f"{base}/api/tags", timeout=timeout).json()
            names = {m.get("name") for m in tags.get("models", [])} | {
                m.get("model") for m in tags.get("models", [])
            }
            if model and model not in names and f"{model}:latest" not in names:
                raise probes.NotReady(f"{base}: model {model} not listed yet (pull running?)")
            body = {"model": model, "prompt": "Hello", "stream": False, "options": {"num_predict": 1}}
            answer = requests.post(f"{base}/api/generate", json=body, timeout=max(timeout, 60))
        except (requests.RequestException, ValueError) as exc:
            raise probes.NotReady(f"{base}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise probes.NotReady(f"POST {base}/api/generate: HTTP {answer.status_code}")
