"""Monitoring cost: throughput with full monitoring (the run's Prometheus scraping every exporter of the
service job - process, node and the service's own - every 1 s) / with monitoring off.

Two services, each deployed afresh per measurement through the workflow's lifecycle, monitored and
unmonitored alternating which goes first, 5 pairs each; prints every pair and the ratio of medians
(target >= 0.97):
- Redis: GET ops/s of redis-benchmark (300k requests, 50 clients);
- llama.cpp (llama-server, SmolLM2-135M, 4 slots): output tokens/s of the llm client, closed loop at
  concurrency 4, 16 requests of 32 tokens; monitored, Prometheus also scrapes the server's own /metrics
  (through the relay holding its key), checked to have been read during the load.

Usage: .venv/bin/python bench/monitoring_cost.py [redis|llamacpp ...]  (default: both)
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from common import ROOT, by_hand, deployment, tmpdir

from aibench.clients.runner import run_point_against
from aibench.recipes import load_service
from aibench.recipes.validation import validate

REDIS = {
    "tests": "get", "clients": 50, "pipeline": 1, "data_size": 3,
    "requests": 300000, "keyspace": 100000, "threads": 0,
}  # fmt: skip
LLAMACPP = load_service(ROOT / "recipes" / "services" / "llamacpp.yaml").params
LLM = validate(
    {"requests": 16, "warmup_requests": 1, "max_tokens": 32, "concurrency": 4}, "kinds/llm", "bench"
)
PAIRS = 5


def redis(monitored: bool) -> float:
    with deployment(tmpdir(), monitored) as (service_dir, ready):
        by_hand(ready, service_dir, {**REDIS, "requests": 20000})  # warm-up
        return by_hand(ready, service_dir, REDIS)


def llamacpp(monitored: bool) -> float:
    work = tmpdir()
    with deployment(work, monitored, "llamacpp", LLAMACPP) as (service_dir, _):
        summary = run_point_against(service_dir, work / "point", client_kind="llm", params=LLM, timeout_s=600)
        if monitored:
            server_scraped(work)
    return next(m["value"] for m in summary["metrics"] if m["name"] == "output_token_throughput")


def server_scraped(work) -> None:
    """The run's Prometheus read the server's own token counter, and it moved during the load."""
    from aibench.files import read_json
    from aibench.monitoring.prometheus import PrometheusClient
    from aibench.rundir import RunDir

    ready = read_json(RunDir(work).monitoring.ready)
    client = PrometheusClient(f"http://{ready['host']}:{ready['port']}")
    found = client.query('max_over_time(llamacpp:tokens_predicted_total{experiment="bench"}[5m])')
    if not found or float(found[0]["value"][1]) < LLM["requests"] * 2:
        sys.exit(f"the server's /metrics was not scraped during the load: {found}")


def compare(name: str, unit: str, measure: Callable[[bool], float]) -> float:
    on, off = [], []
    for i in range(PAIRS):
        for monitored in (True, False) if i % 2 == 0 else (False, True):
            (on if monitored else off).append(measure(monitored))
        print(
            f"{name} pair {i + 1}: monitored {on[-1]:,.1f} {unit}   unmonitored {off[-1]:,.1f} {unit}",
            flush=True,
        )
    ratio = statistics.median(on) / statistics.median(off)
    print(f"{name} monitoring cost: median monitored / median unmonitored = {ratio:.3f} (target >= 0.97)")
    return ratio


def main() -> None:
    chosen = sys.argv[1:] or ["redis", "llamacpp"]
    if "redis" in chosen:
        compare("redis", "GET/s", redis)
    if "llamacpp" in chosen:
        compare("llama.cpp", "tokens/s", llamacpp)


if __name__ == "__main__":
    main()
