"""Chroma client: QPS at concurrency 1 through aibench's query path / a bare loop of chromadb
HttpClient queries on the same collection (target >= 0.95); recall@k exactness against a second,
independent computation; and the token gateway's cost (bare loop through it / straight to the server).

Same server and collection (10,000 synthetic 128-d vectors, HNSW M=8, ef 16/4), the same request in every
loop (k=10, include=[]), 5 alternating rounds of 500 queries; prints each round and ratios of medians.
"""

from __future__ import annotations

import re
import statistics
import time

import numpy as np
from common import tmpdir

from aibench import lifecycle
from aibench.clients.chroma import load, metrics
from aibench.contracts import DeploymentSpec
from aibench.datasets import vectors
from aibench.recipes.validation import validate
from aibench.rundir import RunDir

ROUNDS, QUERIES = 5, 500
SETTINGS = {"count": 10000, "dimension": 128, "queries": 200, "requests": QUERIES, "warmup_requests": 0}
# a sparse graph and a short search, so recall is below 1 and its exactness check means something
HNSW = {"max_neighbors": 8, "ef_construction": 16, "ef_search": 4}
PARAMS = validate({**SETTINGS, **HNSW, "concurrency": 1, "k": 10}, "kinds/chroma-client", "bench")


def bare_loop(collection: object, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for n in range(QUERIES):
        collection.query(query_embeddings=[queries[n % len(queries)]], n_results=10, include=[])  # type: ignore[attr-defined]
    return QUERIES / (time.perf_counter() - start)


def second_recall(documents: np.ndarray, queries: np.ndarray, records: list[load.Query]) -> float:
    """Recall@10 recomputed independently: a full sort of squared distances per query, one at a time."""
    found = []
    for q in records:
        d = ((documents.astype(np.float64) - queries[q.index].astype(np.float64)) ** 2).sum(axis=1)
        truth = set(np.argsort(d, kind="stable")[:10].tolist())
        found.append(len(truth & set(q.ids)) / 10)
    return float(np.mean(found))


def main() -> None:
    service_dir = RunDir(tmpdir()).service("vec")
    lifecycle.deploy(service_dir, DeploymentSpec("vec", "chroma", {}))
    try:
        ready = lifecycle.wait_ready(service_dir, 60, 0.1)
        token = lifecycle.service_secrets(service_dir)["CHROMA_TOKEN"]
        backend = int(re.search(r"on 127\.0\.0\.1:(\d+) behind", service_dir.log.read_text())[1])
        data = vectors.load(PARAMS)
        client = load.connect(ready["host"], ready["port"], token)
        collection = client.create_collection("bench", configuration=load.hnsw_configuration(PARAMS),
                                              embedding_function=None)  # fmt: skip
        load.insert(collection, data.documents, 500)
        direct = load.connect("127.0.0.1", backend, None).get_collection("bench", embedding_function=None)
        exact = np.array(load_exact(data))
        through, bare, straight, recall_gaps = [], [], [], []
        bare_loop(collection, data.queries)  # warm-up
        for n in range(ROUNDS):
            records, _ = load.run_queries(lambda: collection, data.queries, PARAMS, time.perf_counter() + 600)
            by = {(m.name, m.stat): m.value for m in metrics.summarize([], records, exact, PARAMS)}
            through.append(by[("queries_per_s", "mean")])
            bare.append(bare_loop(collection, data.queries))
            straight.append(bare_loop(direct, data.queries))
            recall_gaps.append(
                abs(by[("recall", "mean")] - second_recall(data.documents, data.queries, records))
            )
            recall = by[("recall", "mean")]
            print(f"round {n + 1}: client {through[-1]:.0f} q/s   bare loop {bare[-1]:.0f} q/s   "
                  f"bare loop without gateway {straight[-1]:.0f} q/s   recall {recall:.4f}")  # fmt: skip
    finally:
        lifecycle.stop(service_dir)
    ratio = statistics.median(through) / statistics.median(bare)
    print(f"client / bare HttpClient loop (median) = {ratio:.3f} (target >= 0.95)")
    print(f"recall@10: largest difference from the second computation = {max(recall_gaps):.2e} (exact: 0)")
    print(f"token gateway: bare loop through it / straight to the server = "
          f"{statistics.median(bare) / statistics.median(straight):.3f}")  # fmt: skip


def load_exact(data: vectors.VectorDataset) -> np.ndarray:
    from aibench.clients.chroma.recall import exact_neighbours

    return exact_neighbours(data.documents, data.queries, 10, "l2")


if __name__ == "__main__":
    main()
