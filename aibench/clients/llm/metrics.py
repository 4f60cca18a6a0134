"""LLM serving metrics as docs/metrics.md defines them (vLLM's names), each with its formula id.

Per request (latencies from the intended send time; equal to the actual one in the closed loop):
ttft = first content chunk - sent; e2el = last chunk - sent; tpot = (e2el - ttft) / (output_tokens - 1),
undefined when output_tokens <= 1; itl = every gap between consecutive content chunks, pooled;
queue_delay = actual send - intended send. Per point: mean, median, p90, p95, p99, max of each;
throughputs over the measurement window (batch-means intervals); goodput = requests meeting every SLO /
window; slo_attainment = requests meeting every SLO / requests sent (Wilson interval).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from aibench.clients.llm.load import Record
from aibench.clients.llm.protocols import OLLAMA_TIMINGS
from aibench.results import formulas
from aibench.results.schema import Metric
from aibench.results.stats import distribution, proportion, throughput

#: formula ids of the per-request distributions (docs/metrics.md, "LLM serving")
FORMULAS = {
    "ttft": "llm.ttft",
    "e2el": "llm.e2el",
    "tpot": "llm.tpot",
    "itl": "llm.itl",
    "queue_delay": formulas.QUEUE_DELAY,
    "output_tokens": "llm.output_tokens",
}


def per_request(record: Record) -> dict[str, Any]:
    """The request's own metrics in ms (NaN where undefined)."""
    ok = record.status == "ok" and bool(record.chunks)
    ttft = (record.chunks[0] - record.intended) * 1000 if ok else math.nan
    e2el = (record.chunks[-1] - record.intended) * 1000 if ok else math.nan
    n = record.output_tokens or 0
    tpot = (e2el - ttft) / (n - 1) if ok and n > 1 else math.nan
    itl = [(b - a) * 1000 for a, b in zip(record.chunks, record.chunks[1:], strict=False)]
    return {"ttft_ms": ttft, "e2el_ms": e2el, "tpot_ms": tpot, "itl_ms": itl,
            "queue_delay_ms": (record.actual - record.intended) * 1000}  # fmt: skip


def _stats(name: str, values: list[float], unit: str) -> list[Metric]:
    return distribution(name, values, unit, FORMULAS[name])


def summarize(
    records: list[Record], mode: str, offered_rate: float | None, slo: dict[str, float]
) -> list[Metric]:
    measured = [r for r in records if not r.warmup]
    if not measured:
        return []
    rows = [(r, per_request(r)) for r in measured]
    ok = [(r, m) for r, m in rows if r.status == "ok"]
    start = min(r.intended for r in measured)
    end = max(r.end for r in measured)
    metrics: list[Metric] = []
    for name in ("ttft", "tpot", "e2el"):
        metrics += _stats(name, [m[f"{name}_ms"] for _, m in ok], "ms")
    metrics += _stats("itl", [gap for _, m in ok for gap in m["itl_ms"]], "ms")
    metrics += _stats("output_tokens", [float(r.output_tokens or 0) for r, _ in ok], "tokens")
    if mode == "open":
        metrics += _stats("queue_delay", [m["queue_delay_ms"] for _, m in rows], "ms")
    good = [
        r for r, m in ok
        if m["ttft_ms"] <= slo.get("ttft_ms", math.inf)
        and (math.isnan(m["tpot_ms"]) or m["tpot_ms"] <= slo.get("tpot_ms", math.inf))
    ]  # fmt: skip
    sources = "+".join(sorted({r.token_source for r, _ in ok if r.token_source})) or "none"
    slos = f"ttft<={slo.get('ttft_ms', 'inf')}ms,tpot<={slo.get('tpot_ms', 'inf')}ms"
    done = [r.end for r, _ in ok]
    metrics += [
        throughput("request_throughput", done, start, end, "req/s", "llm.request_throughput"),
        throughput("output_token_throughput", done, start, end, "tokens/s",
                   formulas.formula("llm.output_token_throughput", tokens_from=sources),
                   weights=[r.output_tokens or 0 for r, _ in ok]),
        proportion("error_rate", len(rows) - len(ok), len(rows), formulas.ERROR_RATE),
        throughput("goodput", [r.end for r in good], start, end, "req/s",
                   formulas.formula("llm.goodput", slo=slos)),
        Metric("requests", "count", float(len(rows)), "requests", formula=formulas.REQUESTS),
    ]  # fmt: skip
    if slo:  # the share of requests meeting it, failed ones not
        metrics.append(proportion("slo_attainment", len(good), len(rows),
                                  formulas.formula("llm.slo_attainment", slo=slos)))  # fmt: skip
    sends = sorted(r.actual for r in measured)
    if mode == "open" and offered_rate:
        achieved = (
            (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else 0.0
        )
        metrics += [
            Metric("offered_rate", "mean", offered_rate, "req/s", formula=formulas.OFFERED_RATE),
            Metric("achieved_rate", "mean", achieved, "req/s", formula=formulas.ACHIEVED_RATE),
        ]
    return metrics


RAW_COLUMNS = [
    "index", "warmup", "status", "error", "intended_send_s", "actual_send_s", "first_chunk_s", "last_chunk_s",
    "end_s", "chunks", "ttft_ms", "tpot_ms", "e2el_ms", "queue_delay_ms", "input_tokens", "output_tokens",
    "token_source", *OLLAMA_TIMINGS, "trial", "trial_value", "itl_ms", "replica", "node",
]  # fmt: skip


def raw_csv(records: list[Record]) -> bytes:
    """One row per request; itl_ms holds the request's chunk gaps separated by ';'."""
    out = io.StringIO()
    writer = csv.DictWriter(out, RAW_COLUMNS)
    writer.writeheader()
    for r in records:
        m = per_request(r)
        writer.writerow({
            "index": r.index, "warmup": int(r.warmup), "status": r.status, "error": r.error,
            "intended_send_s": f"{r.intended:.6f}", "actual_send_s": f"{r.actual:.6f}",
            "first_chunk_s": f"{r.chunks[0]:.6f}" if r.chunks else "",
            "last_chunk_s": f"{r.chunks[-1]:.6f}" if r.chunks else "",
            "end_s": f"{r.end:.6f}", "chunks": len(r.chunks),
            "ttft_ms": f"{m['ttft_ms']:.3f}", "tpot_ms": f"{m['tpot_ms']:.3f}",
            "e2el_ms": f"{m['e2el_ms']:.3f}",
            "queue_delay_ms": f"{m['queue_delay_ms']:.3f}",
            "input_tokens": r.prompt_tokens if r.prompt_tokens is not None else "",
            "output_tokens": r.output_tokens if r.output_tokens is not None else "",
            "token_source": r.token_source,
            **{k: r.timings.get(k, "") for k in OLLAMA_TIMINGS},
            "trial": r.trial, "trial_value": r.trial_value,
            "itl_ms": ";".join(f"{g:.3f}" for g in m["itl_ms"]), "replica": r.replica, "node": r.node,
        })  # fmt: skip
    return out.getvalue().encode()
