"""vLLM's OpenAI-compatible server (docker://vllm/vllm-openai) on GPU nodes, API key required.

The key reaches vLLM as VLLM_API_KEY through the service's 0600 env file (never the command line).
Models are read from (and downloaded once into) a cache directory that belongs on scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aibench import probes
from aibench.paths import expand_env
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, ServiceContext, ServiceKind


@SERVICES.register
class VLLM(ServiceKind):
    name = "vllm"
    params_schema = "kinds/vllm"
    binaries = ("vllm",)
    image = "docker://vllm/vllm-openai:v0.6.6"
    path_params = ("model_cache",)

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {"LLM_API_KEY": generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        p = ctx.params
        cache = expand_env(p["model_cache"], "model_cache")
        argv = [
            "vllm", "serve", p["model"],
            "--host", ctx.host, "--port", str(ctx.port),
            "--served-model-name", p["model_alias"],
            "--tensor-parallel-size", str(p["tensor_parallel_size"]),
            "--max-num-seqs", str(p["max_num_seqs"]),
            "--max-model-len", str(p["max_model_len"]),
            "--gpu-memory-utilization", str(p["gpu_memory_utilization"]),
            "--download-dir", cache,
        ]  # fmt: skip
        env = {"VLLM_API_KEY": ctx.secrets["LLM_API_KEY"], "HF_HOME": cache}
        if p["offline"]:
            env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        return Command(argv, env=env)

    def cache_dirs(self, ctx: ServiceContext) -> list[Path]:
        return [Path(expand_env(ctx.params["model_cache"], "model_cache"))]

    def process_pattern(self, ctx: ServiceContext) -> str:
        return f"--port {ctx.port}"

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Ready = /v1/models lists the model and it answers one completion."""
        probes.openai_ready(f"http://{endpoint['host']}:{endpoint['port']}", secrets["LLM_API_KEY"], timeout)
