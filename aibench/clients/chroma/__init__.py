"""Client kind `chroma`: a vector dataset inserted in batches, then k-NN queries measured for latency,
QPS and recall@k against exact neighbours (numpy). One fresh collection per point, dropped after."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aibench.clients import CLIENTS
from aibench.clients.base import ClientKind
from aibench.clients.chroma import load, metrics
from aibench.clients.chroma.recall import exact_neighbours
from aibench.clients.presentation import Panel, Presentation, Stats, Tradeoff
from aibench.clients.stopping import MAX_DURATION, REQUESTS_DONE, TARGET_MET, Until, precision_metric
from aibench.datasets import vectors
from aibench.results.schema import PointResult
from aibench.services.chroma import TOKEN


@CLIENTS.register
class ChromaClient(ClientKind):
    name = "chroma"
    params_schema = "kinds/chroma-client"
    services = ("chroma",)
    secret_names = (TOKEN,)
    presentation = Presentation(
        throughput="queries_per_s",
        panels=(
            Panel("queries_per_s", ("mean",), "Queries"),
            Panel("query_latency", ("median", "p99"), "Query latency"),
            Panel("insert_throughput", ("mean",), "Insert throughput"),
        ),
        headlines=(
            Stats("queries_per_s", ("mean",)), Stats("query_latency", ("median", "p99")),
            Stats("recall", ("mean",)), Stats("insert_throughput", ("mean",)),
        ),
        tradeoff=Tradeoff((("recall", "mean"),), "recall@k", "Recall vs QPS"),
    )  # fmt: skip

    def input_files(self, params: dict[str, Any]) -> dict[str, str]:
        return {"dataset_file": params["dataset_file"]} if params["dataset"] == "file" else {}

    def run(
        self, endpoint: dict[str, Any], secrets: dict[str, str], params: dict[str, Any], timeout_s: float
    ) -> PointResult:
        p = params
        deadline = time.perf_counter() + timeout_s
        data = vectors.load(p)
        exact = exact_neighbours(data.documents, data.queries, p["k"], p["space"])
        client = load.connect(endpoint["host"], endpoint["port"], secrets.get(TOKEN))
        name = f"aibench-{uuid.uuid4().hex[:12]}"
        collection = client.create_collection(
            name, configuration=load.hnsw_configuration(p), embedding_function=None
        )
        origin = time.perf_counter()
        try:
            batches = load.insert(collection, data.documents, p["batch_size"])

            def open_collection() -> Any:
                handle = load.connect(endpoint["host"], endpoint["port"], secrets.get(TOKEN))
                return handle.get_collection(name, embedding_function=None)

            records, met = load.run_queries(open_collection, data.queries, p, deadline)
        finally:
            client.delete_collection(name)
        result = metrics.summarize(batches, records, exact, p)
        measured = [q for q in records if not q.warmup]
        if (until := Until.of(p)) is not None:
            sent = [q for q in measured if q.status != "not sent"]  # not sent: the client's time limit
            reason = TARGET_MET if met else REQUESTS_DONE if len(sent) >= p["requests"] else MAX_DURATION
            latencies = [(q.done - q.intended) * 1000 for q in measured if q.status == "ok"]
            result.append(precision_metric(until, latencies, reason))
        failed = [q for q in measured if q.status != "ok"]
        return PointResult(
            metrics=result,
            raw_csv=metrics.raw_csv(batches, records, exact, origin),
            tool={
                "name": "aibench-chroma",
                "chromadb": _version(),
                "dataset": data.source,
                "vectors": len(data.documents),
                "dimension": int(data.documents.shape[1]),
            },
            status="ok" if len(failed) < len(measured) else "failed",
            error=f"{len(failed)} of {len(measured)} queries failed: {failed[0].error}" if failed else None,
        )


def _version() -> str:
    from importlib.metadata import version

    return version("chromadb")
