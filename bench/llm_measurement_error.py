"""LLM measurement error: 64 concurrent streams against the scheduled server (TTFT 100 ms, ITL 20 ms).

|measured - true| p99 for TTFT and TPOT, where "true" is the server's schedule; target <= 2 ms.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from common import ROOT

from aibench.clients.llm import load, metrics

sys.path.insert(0, str(ROOT))
from tests.scheduled_llm_server import ScheduledServer

TTFT, ITL, TOKENS, STREAMS = 100.0, 20.0, 16, 64


def main() -> None:
    with ScheduledServer(ttft_ms=TTFT, itl_ms=ITL) as server:
        target = load.Target(server.url, "openai-completions", "m", None, TOKENS, 60)
        records, _ = asyncio.run(
            load.run(
                target,
                ["p"],
                mode="closed",
                concurrency=STREAMS,
                rate=1,
                arrival="poisson",
                seed=1,
                requests=STREAMS * 5,
                duration_s=0,
                warmup_requests=STREAMS,
            )
        )
    measured = [metrics.per_request(r) for r in records if not r.warmup and r.status == "ok"]
    ttft_err = np.abs([m["ttft_ms"] - TTFT for m in measured])
    tpot_err = np.abs([m["tpot_ms"] - ITL for m in measured])
    print(f"{len(measured)} requests at {STREAMS} concurrent streams:")
    print(
        f"  TTFT |measured - true| p50 {np.median(ttft_err):.2f} ms, p99 {np.percentile(ttft_err, 99):.2f} ms"
    )
    print(
        f"  TPOT |measured - true| p50 {np.median(tpot_err):.2f} ms, p99 {np.percentile(tpot_err, 99):.2f} ms"
    )
    print("  target: p99 <= 2 ms for both")


if __name__ == "__main__":
    main()
