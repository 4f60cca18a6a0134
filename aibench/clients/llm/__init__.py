"""Client kind `llm`: one asyncio load generator for OpenAI-compatible and Ollama-native servers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.base import ClientKind, share_of
from aibench.clients.llm import load, metrics, prompts, search, stopping
from aibench.clients.presentation import Panel, Presentation, Stats, Tradeoff
from aibench.results.formulas import formula
from aibench.results.schema import Metric, PointResult


def targets_of(endpoint: dict[str, Any], secrets: dict[str, str], p: dict[str, Any]) -> list[load.Target]:
    """The load's targets: the endpoint, or each of its ``replicas`` with its own credentials."""
    replicas = endpoint.get("replicas") or [{"endpoint": endpoint, "secrets": secrets}]
    return [target_of(r["endpoint"], r["secrets"], p) for r in replicas]


def target_of(endpoint: dict[str, Any], secrets: dict[str, str], p: dict[str, Any]) -> load.Target:
    base = f"http://{endpoint['host']}:{endpoint['port']}"
    temperature = {"temperature": p["temperature"]}
    return load.Target(
        base_url=base, api=p["api"], model=endpoint.get("model") or p["model"],
        api_key=secrets.get("LLM_API_KEY"),
        max_tokens=p["max_tokens"], request_timeout_s=p["request_timeout_s"],
        extra={"options": temperature} if p["api"].startswith("ollama") else temperature,
        reuse_connections=bool(endpoint.get("reuse_connections", True)),
    )  # fmt: skip


def prompt_set(p: dict[str, Any]) -> list[str]:
    if p["prompt_file"]:
        return prompts.from_file(p["prompt_file"])
    total = p["warmup_requests"] + (p["requests"] or int(p["duration_s"] * (p["rate"] or 10)) + 1)
    return prompts.synthetic(min(total, 1000), p["input_words"], p["seed"])


@CLIENTS.register
class LLMClient(ClientKind):
    name = "llm"
    params_schema = "kinds/llm"
    services = ("llamacpp", "ollama", "vllm")
    secret_names = ("LLM_API_KEY",)
    spreads_over_replicas = True
    multi_node = True
    presentation = Presentation(
        throughput="output_token_throughput",
        panels=(
            Panel("output_token_throughput", ("mean",), "Output token throughput"),
            Panel("ttft", ("median", "p99"), "TTFT"),
            Panel("tpot", ("median", "p99"), "TPOT"),
            Panel("server_requests_running", ("mean",), "Requests at the server", source="server",
                  also=("server_requests_waiting",)),
            Panel("server_kv_cache_usage", ("mean", "max"), "KV-cache usage (server)", source="server"),
            Panel("server_output_token_throughput", ("mean",), "Output tokens/s (server)", source="server"),
            Panel("server_tpot", ("mean", "median", "p99"), "Server-side latency",
                  source="server", also=("server_prefill_time_per_token", "server_ttft")),
        ),
        headlines=(
            Stats("output_token_throughput", ("mean",)), Stats("ttft", ("median", "p99")),
            Stats("tpot", ("median", "p99")), Stats("goodput", ("mean",)),
        ),
        tradeoff=Tradeoff((("ttft", "p99"), ("tpot", "p99"), ("ttft", "median")), "latency (ms)",
                          "Latency vs throughput"),
        raw_figures=("ttft_cdf",),
    )  # fmt: skip

    def own_duration_s(self, params: dict[str, Any]) -> float | None:
        """A timed load (requests 0) runs duration_s per trial, an SLO search up to search_trials trials;
        one ``until`` a precision target at most its max_duration_s."""
        until = stopping.Until.of(params)
        if until is not None:
            return min(until.max_duration_s, params["duration_s"] or until.max_duration_s)
        if params["requests"]:
            return None
        return float(params["duration_s"]) * (params["search_trials"] if params["search"] != "none" else 1)

    def input_files(self, params: dict[str, Any]) -> dict[str, str]:
        return {"prompt_file": params["prompt_file"]} if params["prompt_file"] else {}

    def params_problem(
        self, params: dict[str, Any], timeout_s: float
    ) -> tuple[tuple[str, ...], str] | None:
        if params.get("until") and params["search"] != "none":
            return ("until", "search"), (
                "an SLO search runs trials of a fixed size, a precision target runs one load until it is "
                "met: set one of them"
            )
        if params["search"] != "none" and params["search_low"] >= params["search_high"]:
            return (
                ("search_low", "search_high"),
                f"{params['search_low']:g} is not below search_high ({params['search_high']:g}): the SLO "
                "search brackets between them",
            )
        return super().params_problem(params, timeout_s)

    def run(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> PointResult:
        p = params
        targets, texts = targets_of(endpoint, secrets, p), prompt_set(p)
        deadline = time.monotonic() + timeout_s

        def run_load(rate: float, concurrency: int) -> list[load.Record]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the client's time limit of {timeout_s:g} s is used up")
            running = load.run(
                targets, texts, mode=p["mode"], concurrency=concurrency, rate=rate, arrival=p["arrival"],
                seed=p["seed"], requests=p["requests"], duration_s=p["duration_s"],
                warmup_requests=p["warmup_requests"], stop_when=stop_when,
                max_duration_s=until.max_duration_s if until else 0.0,
            )  # fmt: skip
            return asyncio.run(asyncio.wait_for(running, left))[0]

        until = stopping.Until.of(p)
        met = [False]

        answers = stopping.Answers(until.metric) if until else None

        def precise_enough(records: list[load.Record]) -> bool:
            assert until is not None and answers is not None
            met[0] = until.met(answers.update(records))
            return met[0]

        stop_when = precise_enough if until else None
        if p["search"] == "none":
            records = run_load(p["rate"], p["concurrency"])
            trimmed = stopping.trim_warmup(records, p["warmup_rule"], until.metric if until else "ttft")
            result = metrics.summarize(records, p["mode"], self._offered(p), self._slo(p))
            result += stopping.stop_metrics(records, p, until, met[0], trimmed)
        else:
            records, result = self._search(p, run_load, self._slo(p))
        tool = {"name": "aibench-llm", "api": p["api"], "model": targets[0].model, "replicas": len(targets)}
        return self._result(records, result, tool)

    @staticmethod
    def _slo(p: dict[str, Any]) -> dict[str, float]:
        return {k.removeprefix("slo_"): v for k, v in p.items() if k.startswith("slo_") and v}

    @staticmethod
    def _offered(p: dict[str, Any]) -> float | None:
        return p["rate"] if p["mode"] == "open" else None

    @staticmethod
    def _result(records: list[load.Record], result: list[Metric], tool: dict[str, Any]) -> PointResult:
        failures = [r for r in records if r.status != "ok" and not r.warmup]
        failed = len(failures)
        measured = sum(not r.warmup for r in records)
        return PointResult(
            metrics=result,
            raw_csv=metrics.raw_csv(records),
            tool=tool,
            status="ok" if result and failed < measured else "failed",
            error=None if failed == 0 else f"{failed} of {measured} requests failed: {failures[0].error}",
        )

    # -- a point's load from several client nodes (aibench.clients.fanout)

    #: seeds of the client nodes' shares are this far apart: independent schedules and prompts
    SEED_STRIDE = 7919

    def nodes_problem(self, params: dict[str, Any], nodes: int) -> tuple[tuple[str, ...], str] | None:
        if params.get("until"):
            return ("until",), "a precision target stops one load when it is met, from one client node"
        if params["warmup_rule"] != "fixed":
            return ("warmup_rule",), "MSER-5 finds the steady state of one load's series: one client node"
        if params["search"] != "none":
            return ("search",), "an SLO search runs its trials one after another, from one client node"
        if params["mode"] == "closed" and params["concurrency"] < nodes:
            return ("concurrency",), (
                f"{params['concurrency']} streams cannot be split over {nodes} client nodes (one each at "
                "least)"
            )
        if params["requests"] and params["requests"] < nodes:
            return ("requests",), f"{params['requests']} requests cannot be split over {nodes} client nodes"
        return None

    def share(self, params: dict[str, Any], rank: int, nodes: int) -> dict[str, Any]:
        """Counts split as evenly as they go (the first nodes take the remainder); the open loop's rate
        divided by ``nodes`` with a seed of its own per node, so the merged schedule is the point's:
        independent Poisson streams at rate/N merge into one at the full rate; a constant schedule's
        shares are offset by rank/rate, so they interleave."""

        def part(total: int) -> int:
            return share_of(total, rank, nodes)

        shared = {**params, "requests": part(params["requests"]),
                  "warmup_requests": part(params["warmup_requests"]),
                  "seed": params["seed"] + rank * self.SEED_STRIDE}  # fmt: skip
        shared["prompt_shift"] = rank / nodes  # a prompt file's nodes start at their own slice of it
        if params["mode"] == "closed":
            shared["concurrency"] = part(params["concurrency"])
        else:
            shared["rate"] = params["rate"] / nodes
            shared["phase_s"] = rank / params["rate"] if params["arrival"] == "constant" else 0.0
        return shared

    def run_share(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        p = params
        targets, texts = targets_of(endpoint, secrets, p), prompt_set(p)
        first = int(len(texts) * p.get("prompt_shift", 0.0))
        texts = texts[first:] + texts[:first]  # (synthetic prompts differ by seed already)
        running = load.run(
            targets, texts, mode=p["mode"], concurrency=p["concurrency"], rate=p["rate"],
            arrival=p["arrival"], seed=p["seed"], requests=p["requests"], duration_s=p["duration_s"],
            warmup_requests=p["warmup_requests"], phase_s=p.get("phase_s", 0.0),
        )  # fmt: skip
        records, origin_wall = asyncio.run(asyncio.wait_for(running, timeout_s))
        return {"origin_wall": origin_wall, "model": targets[0].model, "replicas": len(targets),
                "records": [dataclasses.asdict(r) for r in records]}  # fmt: skip

    def merge(self, parts: list[dict[str, Any]], params: dict[str, Any]) -> PointResult:
        """Every node's requests on one time axis, each with its ``node``; the point's metrics from all
        of them together (percentiles of the merged requests, never averaged over nodes)."""
        records = []
        for part in parts:
            for data in part["records"]:
                record = load.Record(**data)
                record.shifted(part["shift_s"])
                record.node = part["rank"]
                records.append(record)
        records.sort(key=lambda r: (r.intended, r.node))
        result = metrics.summarize(records, params["mode"], self._offered(params), self._slo(params))
        tool = {"name": "aibench-llm", "api": params["api"], "model": parts[0]["model"],
                "replicas": parts[0]["replicas"], "client_nodes": len(parts)}  # fmt: skip
        return self._result(records, result, tool)

    @staticmethod
    def _search(
        p: dict[str, Any], run_load: Any, slo: dict[str, float]
    ) -> tuple[list[load.Record], list[Metric]]:
        """SLO search; the summary describes the best passing trial, plus the search's own result."""
        by_rate = p["search"] == "rate"

        def trial(value: float) -> list[load.Record]:
            return run_load(value, p["concurrency"]) if by_rate else run_load(p["rate"], int(value))

        best, trials = search.search(
            trial, p["search_low"], p["search_high"], p["slo_ttft_ms"], p["slo_tpot_ms"], p["search_trials"],
            integer=not by_rate,
        )  # fmt: skip
        for number, t in enumerate(trials):
            for record in t.records:
                record.trial, record.trial_value = number, t.value
        shown = next((t for t in trials if t.passed and t.value == best), trials[0])
        offered = shown.value if by_rate and p["mode"] == "open" else None
        slos = f"p99_ttft<={p['slo_ttft_ms']}ms,p99_tpot<={p['slo_tpot_ms']}ms"
        result = [
            *metrics.summarize(shown.records, p["mode"], offered, slo),
            Metric(f"slo_max_{p['search']}", "max", float(best), "req/s" if by_rate else "streams",
                   formula=formula("llm.slo_max", search=p["search"], slo=slos)),
            Metric("slo_search_trials", "count", float(len(trials)), "trials",
                   formula="llm.slo_search_trials"),
        ]  # fmt: skip
        return [r for t in trials for r in t.records], result
