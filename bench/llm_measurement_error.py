"""LLM measurement error: 64 concurrent streams against the scheduled server (TTFT 100 ms, ITL 20 ms).

The server stamps every chunk with the moment it wrote it (perf_counter, CLOCK_MONOTONIC, shared by
the two processes), so the client's error is measured exactly:
  TTFT error = measured TTFT - (server's first write - client's send) = first chunk's receive delay
  TPOT error = measured TPOT - (server's last write - server's first write) / (tokens - 1)
Also printed: the offset from the nominal schedule (server-side queueing under 64 streams).
Target: p99 of |error| <= 2 ms for TTFT and TPOT.
"""

from __future__ import annotations

import asyncio
import re
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
        settings = {"mode": "closed", "concurrency": STREAMS, "rate": 1, "arrival": "poisson", "seed": 1}
        cycle_s = (TTFT + (TOKENS - 1) * ITL) / 1000
        running = load.run(
            target, ["p"], requests=STREAMS * 5, duration_s=0, warmup_requests=STREAMS, ramp_up_s=cycle_s,
            **settings,
        )  # fmt: skip
        records, _ = asyncio.run(running)
    ttft_err, tpot_err, nominal = [], [], []
    for record in records:
        if record.warmup or record.status != "ok":
            continue
        written = [float(t) for t in re.findall(r"@([0-9.]+)", record.text)]
        m = metrics.per_request(record)
        sent = record.origin + record.actual
        ttft_err.append(m["ttft_ms"] - (written[0] - sent) * 1000)
        tpot_err.append(m["tpot_ms"] - (written[-1] - written[0]) * 1000 / (len(written) - 1))
        nominal.append(m["ttft_ms"] - TTFT)
    for name, errors in (("TTFT", ttft_err), ("TPOT", tpot_err)):
        e = np.abs(errors)
        print(f"{name} |measured - true| over {len(e)} requests: median {np.median(e):.2f} ms, "
              f"p99 {np.percentile(e, 99):.2f} ms (target p99 <= 2 ms)")  # fmt: skip
    queueing = f"median {np.median(nominal):.2f} ms, p99 {np.percentile(nominal, 99):.2f} ms"
    print(f"(TTFT minus the nominal {TTFT:g} ms - request transit and server queueing - {queueing})")


if __name__ == "__main__":
    main()
