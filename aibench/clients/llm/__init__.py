"""Client kind `llm`: one asyncio load generator for OpenAI-compatible and Ollama-native servers."""

from __future__ import annotations

import asyncio
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.base import ClientKind
from aibench.clients.llm import load, metrics, prompts
from aibench.results.schema import PointResult


@CLIENTS.register
class LLMClient(ClientKind):
    name = "llm"
    params_schema = "kinds/llm"
    services = ("llamacpp", "ollama", "vllm")
    secret_names = ("LLM_API_KEY",)

    def run(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> PointResult:
        p = params
        total = p["warmup_requests"] + (p["requests"] or int(p["duration_s"] * (p["rate"] or 10)) + 1)
        prompt_set = (
            prompts.from_file(p["prompt_file"]) if p["prompt_file"]
            else prompts.synthetic(min(total, 1000), p["input_words"], p["seed"])
        )  # fmt: skip
        base = endpoint.get("url") or f"http://{endpoint['host']}:{endpoint['port']}"
        target = load.Target(
            base_url=base.rstrip("/"), api=p["api"], model=p["model"], api_key=secrets.get("LLM_API_KEY"),
            max_tokens=p["max_tokens"], request_timeout_s=p["request_timeout_s"],
            extra={"temperature": p["temperature"]} if not p["api"].startswith("ollama")
            else {"options": {"temperature": p["temperature"]}},
        )  # fmt: skip
        records, _ = asyncio.run(
            asyncio.wait_for(
                load.run(
                    target, prompt_set, mode=p["mode"], concurrency=p["concurrency"], rate=p["rate"],
                    arrival=p["arrival"], seed=p["seed"], requests=p["requests"], duration_s=p["duration_s"],
                    warmup_requests=p["warmup_requests"],
                ),
                timeout_s,
            )
        )  # fmt: skip
        slo = {k.removeprefix("slo_"): v for k, v in p.items() if k.startswith("slo_") and v}
        result = metrics.summarize(records, p["mode"], p["rate"] if p["mode"] == "open" else None, slo)
        failed = sum(r.status != "ok" for r in records if not r.warmup)
        return PointResult(
            metrics=result,
            raw_csv=metrics.raw_csv(records),
            tool={"name": "aibench-llm", "api": p["api"], "model": p["model"]},
            status="ok" if result and failed < len(records) else "failed",
            error=None
            if failed == 0
            else f"{failed} of {len([r for r in records if not r.warmup])} requests failed",
        )
