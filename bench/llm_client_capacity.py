"""LLM client capacity: open loop against a server that answers instantly with 16 streamed chunks.

Offers 1,000 requests/s (Poisson, seeded) for a few seconds and prints achieved/offered and the p99
queue delay (actual send - intended send); targets >= 0.99 and <= 5 ms. Then raises the rate to
find the ceiling (the highest rate still meeting both). Server and client are separate processes.
Progress reporting is on, as in a workflow's point (aibench.clients.progress, at its default pace).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import numpy as np
from common import ROOT

from aibench.clients import progress
from aibench.clients.llm import load, metrics

sys.path.insert(0, str(ROOT))
from tests.scheduled_llm_server import ScheduledServer

DURATION_S = 5.0


def offer(server: ScheduledServer, rate: float) -> tuple[float, float, float]:
    target = load.Target(server.url, "openai-completions", "m", None, 16, 30)
    records, _ = asyncio.run(
        load.run(
            target,
            ["p"],
            mode="open",
            concurrency=1,
            rate=rate,
            arrival="poisson",
            seed=1,
            requests=int(rate * DURATION_S),
            duration_s=0,
            warmup_requests=0,
        )
    )
    by = {(m.name, m.stat): m.value for m in metrics.summarize(records, "open", rate, {})}
    delays = [metrics.per_request(r)["queue_delay_ms"] for r in records]
    errors = by.get(("error_rate", "mean"), 1.0)
    return by[("achieved_rate", "mean")] / rate, float(np.percentile(delays, 99)), errors


def main() -> None:
    log = logging.getLogger("bench.capacity")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    with ScheduledServer(ttft_ms=0, itl_ms=0) as server, progress.reporting(log, bar=False):
        offer(server, 200)  # warm-up
        ratio, p99, errors = offer(server, 1000)
        print(f"1000 req/s offered: achieved/offered {ratio:.4f} (target >= 0.99), ", end="")
        print(f"p99 queue delay {p99:.2f} ms (target <= 5), errors {errors:.3f}")
        ceiling = 0
        for rate in (1500, 2000, 3000, 4000):
            ratio, p99, errors = offer(server, rate)
            shown = f"achieved/offered {ratio:.4f}, p99 queue delay {p99:.2f} ms, errors {errors:.3f}"
            print(f"{rate} req/s: {shown}")
            if ratio >= 0.99 and p99 <= 5 and errors == 0:
                ceiling = rate
            else:
                break
        print(f"ceiling: {ceiling or '< 1500'} req/s meets both targets")


if __name__ == "__main__":
    main()
