"""The cost of progress reporting in the LLM client (aibench.clients.progress), side by side in one run.

The open loop at 1,500 requests/s (Poisson, seeded) against the instant 16-chunk test server, three
rounds of each, interleaved: with progress reported (the reporter thread at a 1 s interval, ten times
the default's pace, and each completion counted) and without (no reporter, the count a no-op). Prints
the client's CPU time per request (process time of this process / requests) and the p99 queue delay
of each, and the ratio of the CPU times.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time

import numpy as np
from common import ROOT

from aibench.clients import progress
from aibench.clients.llm import load, metrics

sys.path.insert(0, str(ROOT))
from tests.scheduled_llm_server import ScheduledServer

RATE, DURATION_S, ROUNDS = 1500.0, 5.0, 3


def offer(server: ScheduledServer) -> tuple[float, float]:
    """CPU seconds per request of this process, and the p99 queue delay in ms."""
    target = load.Target(server.url, "openai-completions", "m", None, 16, 30)
    cpu = time.process_time()
    running = load.run(target, ["p"], mode="open", concurrency=1, rate=RATE, arrival="poisson", seed=1,
                       requests=int(RATE * DURATION_S), duration_s=0, warmup_requests=0)  # fmt: skip
    records, _ = asyncio.run(running)
    cpu = time.process_time() - cpu
    delays = [metrics.per_request(r)["queue_delay_ms"] for r in records]
    return cpu / len(records), float(np.percentile(delays, 99))


def main() -> None:
    log = logging.getLogger("bench.progress")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    counted = progress.Progress.completed
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with ScheduledServer(ttft_ms=0, itl_ms=0) as server:
        offer(server)  # warm-up
        for _ in range(ROUNDS):
            progress.Progress.completed = counted
            with progress.reporting(log, interval_s=1.0, stall_s=60.0, bar=False):
                results["on"].append(offer(server))
            progress.Progress.completed = lambda self, ok=True: None
            results["off"].append(offer(server))
    progress.Progress.completed = counted
    for name, rounds in results.items():
        cpu = statistics.median(r[0] for r in rounds) * 1e6
        p99 = statistics.median(r[1] for r in rounds)
        shown = f"{cpu:.0f} us CPU per request, p99 queue delay {p99:.2f} ms (median of {ROUNDS})"
        print(f"progress {name}: {shown}")
    on, off = (statistics.median(r[0] for r in results[k]) for k in ("on", "off"))
    print(f"CPU per request, progress on / off: {on / off:.3f}")


if __name__ == "__main__":
    main()
