"""vLLM's OpenAI-compatible server (docker://vllm/vllm-openai) on GPU nodes, API key required.

The key reaches vLLM as VLLM_API_KEY through the service's 0600 env file (never the command line).
Models are read from (and downloaded once into) a cache directory that belongs on scratch.

Its own /metrics is scraped per point: v0.6.6's V0 engine registers the ``vllm:*`` series in
vllm/engine/metrics.py (``PrometheusStatLogger``; only with log stats on, so never pass
``--disable-log-stats``), and its API-key middleware guards only paths under /v1
(vllm/entrypoints/openai/api_server.py l.572-586), so Prometheus scrapes /metrics without the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aibench import probes
from aibench.monitoring.server_series import histogram_queries
from aibench.paths import expand_env
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

#: vLLM v0.6.6's histograms (vllm/engine/metrics.py l.57-270) as the canonical server series
HISTOGRAMS = {
    "server_ttft_seconds": "vllm:time_to_first_token_seconds",
    "server_tpot_seconds": "vllm:time_per_output_token_seconds",
    "server_queue_time_seconds": "vllm:request_queue_time_seconds",
    "server_prefill_time_seconds": "vllm:request_prefill_time_seconds",
    "server_decode_time_seconds": "vllm:request_decode_time_seconds",
}


@SERVICES.register
class VLLM(ServiceKind):
    name = "vllm"
    params_schema = "kinds/vllm"
    binaries = ("vllm",)
    image = "docker://vllm/vllm-openai:v0.6.6"
    path_params = ("model_cache",)
    stateless = True

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {"LLM_API_KEY": generate_password()}

    def resources_problem(self, params: dict[str, Any], resources: dict[str, Any]) -> tuple[str, str] | None:
        # one GPU per tensor-parallel rank (vLLM's distributed-serving guide: tensor_parallel_size=4
        # on a node with 4 GPUs); the job's --gres must hold them all
        tp, gpus = params["tensor_parallel_size"], resources.get("gpus", 0)
        if tp > gpus:
            return "tensor_parallel_size", (
                f"tensor_parallel_size {tp} shards the model over {tp} GPUs, but the service job asks for "
                f"{gpus} (resources.gpus); sweep gpus with it (link: [[tensor_parallel_size, gpus]])"
            )
        return None

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

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        """The process exporter, and the server's own /metrics, scraped where vLLM serves it."""
        server = Exporter(name="server", port=ctx.port, command=None)
        return [self.process_exporter(ctx, ports[0]), server]

    def server_queries(self) -> dict[str, str]:
        gauge = "sum(vllm:{}{{{{{{sel}}}}}})"
        queries = {
            "server_requests_running": gauge.format("num_requests_running"),
            "server_requests_waiting": gauge.format("num_requests_waiting"),
            "server_kv_cache_usage": "avg(vllm:gpu_cache_usage_perc{{{sel}}})",  # 1 = 100 percent
            "server_output_tokens_total": gauge.format("generation_tokens_total"),
            "server_prompt_tokens_total": gauge.format("prompt_tokens_total"),
        }
        for raw, metric in HISTOGRAMS.items():
            queries |= histogram_queries(raw, metric)
        return queries

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Ready = /v1/models lists the model and it answers one completion."""
        probes.openai_ready(f"http://{endpoint['host']}:{endpoint['port']}", secrets["LLM_API_KEY"], timeout)
