"""A Chroma point's metrics (docs/metrics.md, "Chroma"): insert throughput by batch, query latency and
QPS, recall@k.

insert_throughput = vectors / (end of last batch - start of first); insert_batch_latency per add() call;
query_latency = answer received - intended send (the actual send in the closed loop);
queries_per_s = answered queries / (last answer - first intended send); recall = mean over measured
queries of |returned ids ∩ exact k nearest (numpy, same space)| / k; recall_perfect = the share of them
whose recall is 1. Throughputs carry batch-means intervals, recall_perfect Wilson's.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from aibench.clients.chroma.load import Batch, Query
from aibench.clients.chroma.recall import recall_at_k
from aibench.results import formulas
from aibench.results.schema import Metric
from aibench.results.stats import distribution, mean_interval, proportion, throughput, with_ci

#: formula ids (docs/metrics.md, "Chroma")
FORMULAS = {
    "insert_throughput": "chroma.insert_throughput",
    "insert_batch_latency": "chroma.insert_batch_latency",
    "query_latency": "chroma.query_latency",
    "queue_delay": formulas.QUEUE_DELAY,
    "queries_per_s": "chroma.queries_per_s",
    "recall": "chroma.recall",
    "recall_perfect": "chroma.recall_perfect",
}


def query_recalls(queries: list[Query], exact: np.ndarray) -> list[float]:
    return [recall_at_k(q.ids, exact[q.index]) if q.status == "ok" else math.nan for q in queries]


def summarize(
    batches: list[Batch], records: list[Query], exact: np.ndarray, p: dict[str, Any]
) -> list[Metric]:
    out: list[Metric] = []
    if batches:
        labels = {"batch_size": str(p["batch_size"])}
        ends, sizes = [b.end for b in batches], [b.size for b in batches]
        out.append(throughput("insert_throughput", ends, batches[0].start, batches[-1].end, "vectors/s",
                              FORMULAS["insert_throughput"], sizes, labels))  # fmt: skip
        out += distribution("insert_batch_latency", [(b.end - b.start) * 1000 for b in batches], "ms",
                            FORMULAS["insert_batch_latency"], labels)  # fmt: skip
    measured = [q for q in records if not q.warmup]
    answered = [q for q in measured if q.status == "ok"]
    out += distribution(
        "query_latency", [(q.done - q.intended) * 1000 for q in answered], "ms", FORMULAS["query_latency"]
    )
    if p["mode"] == "open":
        out += distribution(
            "queue_delay", [(q.actual - q.intended) * 1000 for q in answered], "ms", FORMULAS["queue_delay"]
        )
        out.append(Metric("offered_rate", "mean", p["rate"], "queries/s", formula=formulas.OFFERED_RATE))
    if answered:
        done = [q.done for q in answered]
        first = min(q.intended for q in measured)
        qps = throughput("queries_per_s", done, first, max(done), "queries/s", FORMULAS["queries_per_s"])
        out.append(qps)
        recalls = query_recalls(answered, exact)
        k = {"k": str(p["k"])}
        values = np.asarray(recalls, dtype=float)
        low, high, method = mean_interval(values)
        out.append(Metric("recall", "mean", float(np.mean(values)), "fraction", k,
                          with_ci(FORMULAS["recall"], method), ci_low=low, ci_high=high, n=int(values.size),
                          low_n=low is None))  # fmt: skip
        out.append(Metric("recall", "min", float(np.min(recalls)), "fraction", k, FORMULAS["recall"]))
        out.append(proportion("recall_perfect", int(np.sum(values == 1.0)), int(values.size),
                              FORMULAS["recall_perfect"], k))  # fmt: skip
    out.append(Metric("requests", "count", len(measured), "queries", formula=formulas.REQUESTS))
    failed = len(measured) - len(answered)
    if measured:
        out.append(proportion("error_rate", failed, len(measured), formulas.ERROR_RATE))
    else:
        out.append(Metric("error_rate", "mean", 0.0, "fraction", formula=formulas.ERROR_RATE))
    return out


COLUMNS = ["phase", "number", "size", "intended_s", "sent_s", "done_s", "latency_ms", "queue_delay_ms",
           "recall", "status", "warmup", "error"]  # fmt: skip


def raw_csv(batches: list[Batch], records: list[Query], exact: np.ndarray, origin: float) -> bytes:
    """One row per insert batch and per query; times in s from ``origin``, latencies in ms."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)

    def times(*values: float) -> list[str]:
        return [f"{value - origin:.6f}" for value in values]

    for b in batches:
        latency = f"{(b.end - b.start) * 1000:.3f}"
        row = ["insert", b.number, b.size, *times(b.start, b.start, b.end), latency, "0"]
        writer.writerow([*row, "", "ok", 0, ""])
    for number, (q, recall) in enumerate(zip(records, query_recalls(records, exact), strict=True)):
        done = q.done or q.intended
        shown = "" if math.isnan(recall) else f"{recall:.4f}"
        latency, delay = f"{(done - q.intended) * 1000:.3f}", f"{(q.actual - q.intended) * 1000:.3f}"
        writer.writerow(["query", number, q.index, *times(q.intended, q.actual, done), latency, delay, shown,
                         q.status, int(q.warmup), q.error])  # fmt: skip
    return out.getvalue().encode()
