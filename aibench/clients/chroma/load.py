"""Load on a Chroma collection through chromadb's own HttpClient: batched inserts, then queries.

Queries run closed loop (N worker threads, each with its own HttpClient, back to back) or open loop
(a seeded schedule fixed in advance, dispatched to a pool of ``max_inflight`` workers; latency counts
from the intended send, so a saturated pool shows as queue delay). Times are time.perf_counter().
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aibench.clients import progress
from aibench.clients.arrivals import schedule
from aibench.clients.stopping import CHECK_S, Until

TOKEN_HEADER = "X-Chroma-Token"


@dataclass
class Batch:
    number: int
    size: int
    start: float
    end: float


#: the status of a measured query the load never sent, as its precision target ended it first
UNSENT = "unsent"


@dataclass
class Query:
    index: int  # row of the query vector
    intended: float
    warmup: bool
    actual: float = 0.0
    done: float = 0.0
    ids: list[int] = field(default_factory=list)
    status: str = "ok"
    error: str = ""


def connect(host: str, port: int, token: str | None) -> Any:
    import chromadb
    from chromadb.config import Settings

    headers = {TOKEN_HEADER: token} if token else None
    return chromadb.HttpClient(
        host=host, port=port, headers=headers, settings=Settings(anonymized_telemetry=False)
    )


def hnsw_configuration(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("space", "max_neighbors", "ef_construction", "ef_search")
    return {"hnsw": {key: p[key] for key in keys}}


def insert(collection: Any, documents: np.ndarray, batch_size: int) -> list[Batch]:
    batches = []
    for number, first in enumerate(range(0, len(documents), batch_size)):
        rows = documents[first : first + batch_size]
        ids = [str(i) for i in range(first, first + len(rows))]
        start = time.perf_counter()
        collection.add(ids=ids, embeddings=rows)
        batches.append(Batch(number, len(rows), start, time.perf_counter()))
    return batches


def _ask(collection: Any, vector: np.ndarray, k: int, query: Query) -> None:
    query.actual = time.perf_counter()
    query.intended = query.intended or query.actual  # closed loop: sent when intended
    try:
        answer = collection.query(query_embeddings=[vector], n_results=k, include=[])
        query.ids = [int(i) for i in answer["ids"][0]]
    except Exception as exc:
        query.status, query.error = "error", f"{type(exc).__name__}: {exc}"[:300]
    query.done = time.perf_counter()


def run_queries(
    open_collection: Callable[[], Any], queries: np.ndarray, p: dict[str, Any], deadline: float
) -> tuple[list[Query], bool]:
    """Warm-up queries (back to back), then ``requests`` measured ones in the closed or open loop; query
    vectors are used in turn. Queries not sent before ``deadline`` are recorded as such. With ``until``
    (aibench.clients.stopping), no query is sent once its precision target is met or its
    max_duration_s is over: those are left out. Returns the queries, and whether the target was met."""
    k, count = p["k"], len(queries)
    tracker = progress.start(p["warmup_requests"] + p["requests"], None, "queries")
    first = open_collection()
    warmup = [Query(n % count, 0.0, warmup=True) for n in range(p["warmup_requests"])]
    for q in warmup:
        _ask(first, queries[q.index], k, q)
        tracker.completed(q.status == "ok")
    offset = p["warmup_requests"]
    measured = [Query((offset + n) % count, 0.0, warmup=False) for n in range(p["requests"])]
    size = p["concurrency"] if p["mode"] == "closed" else p["max_inflight"]
    handles = [first] + [open_collection() for _ in range(size - 1)]
    jobs: queue.SimpleQueue[Query | None] = queue.SimpleQueue()

    until = Until.of(p)
    stop = threading.Event()  # the precision target is met
    horizon = time.perf_counter() + (until.max_duration_s if until else math.inf)
    closed = p["mode"] == "closed"
    answered: list[float] = []  # the measured answers' latencies, ms, as they come (for the target)
    lock = threading.Lock()

    def worker(handle: Any) -> None:
        while (q := jobs.get()) is not None:
            # the closed loop queues every query at once: one not taken yet when the load is over is
            # never sent; the open loop's were released at their intended time and are all sent
            if closed and (stop.is_set() or time.perf_counter() > horizon):
                q.status = UNSENT  # not a failure: the load was over
                continue
            if time.perf_counter() > deadline:
                q.status, q.error = "not sent", "the client's time limit was reached"
                continue
            _ask(handle, queries[q.index], k, q)
            tracker.completed_in_thread(q.status == "ok")
            if q.status == "ok":
                with lock:
                    answered.append((q.done - q.intended) * 1000)

    def watch() -> None:
        assert until is not None
        while not stop.wait(CHECK_S):
            with lock:
                values = list(answered)
            if until.met(values):
                stop.set()

    workers = [threading.Thread(target=worker, args=(h,), daemon=True) for h in handles]
    watcher = threading.Thread(target=watch, daemon=True) if until is not None else None
    for thread in [*workers, *([watcher] if watcher else [])]:
        thread.start()
    met = False
    try:
        if closed:  # every worker takes the next query as soon as it is free
            for q in measured:
                jobs.put(q)
        else:  # each query is released at its intended time, whether or not a worker is free
            origin = time.perf_counter() + 0.05
            at = schedule(len(measured), p["rate"], p["arrival"], p["seed"])
            for number, (q, offset) in enumerate(zip(measured, at, strict=True)):
                q.intended = origin + float(offset)
                if stop.is_set() or q.intended > horizon:  # the load is over: none of the rest is sent
                    for rest in measured[number:]:
                        rest.status = UNSENT
                    break
                if (wait := q.intended - time.perf_counter()) > 0:
                    time.sleep(wait)
                jobs.put(q)
    finally:
        for _ in workers:
            jobs.put(None)
        for thread in workers:
            thread.join()
        met = stop.is_set()
        stop.set()  # ends the watch
        tracker.finish()
        if watcher is not None:
            watcher.join(10)
    sent = [q for q in measured if q.status != UNSENT]
    return warmup + sent, met
