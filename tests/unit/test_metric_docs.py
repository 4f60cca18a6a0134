"""docs/metrics.md against the code: every client kind's summarising functions run on small synthetic
inputs (no server), plus the efficiency and Prometheus rows; every formula id they emit is in the
document's tables, with the metric name it is listed for, and every id listed there is emitted by
something. The stats are those of one vocabulary, and each kind presents only metrics it emits."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from aibench.clients import CLIENTS
from aibench.clients.chroma import metrics as chroma_metrics
from aibench.clients.fanout import _merged
from aibench.clients.llm import LLMClient, stopping
from aibench.clients.llm import metrics as llm_metrics
from aibench.clients.redis_benchmark import parse_csv
from aibench.clients.sysbench import parse_report
from aibench.monitoring.server_metrics import server_rows
from aibench.monitoring.server_series import GAUGES, HISTOGRAMS, RATES, RATIOS
from aibench.recipes.validation import validate
from aibench.results.aggregate import resource_rows
from aibench.results.efficiency import efficiency_rows
from aibench.results.formulas import formula_id, prometheus_window
from aibench.results.schema import Metric
from aibench.results.stats import VOCABULARY
from aibench.services import SERVICES
from tests.unit import samples

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

SERIES = ("cpu_cores", "rss_bytes", "node_cpu_busy_cores", "gpu_count", "targets_up")


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a bar inside a cell); none for other lines."""
    if not line.startswith("|"):
        return []
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def documented() -> dict[str, set[str]]:
    """Formula id -> the metric names its rows list, from every table of docs/metrics.md with a
    'formula id' column."""
    ids: dict[str, set[str]] = {}
    column = None
    for line in DOC.read_text().splitlines():
        row = cells(line)
        if not row:
            column = None
        elif "formula id" in row:
            column = row.index("formula id")
        elif column is not None and not set(row[0]) <= set("-"):
            found = re.match(r"`([^`]+)`", row[column])
            assert found, f"docs/metrics.md: no formula id in {line!r}"
            ids.setdefault(formula_id(found[1]), set()).update(re.findall(r"`([^`]+)`", row[0]))
    return ids


def llm_metric_sets() -> Iterator[list[Metric]]:
    yield llm_metrics.summarize(samples.llm_records(), "closed", None, {})
    yield llm_metrics.summarize(samples.llm_records(), "open", 5.0, {"ttft_ms": 200.0, "tpot_ms": 50.0})
    params = validate({"search": "concurrency", "search_low": 1, "search_high": 4, "slo_ttft_ms": 500},
                      "kinds/llm", "test")  # fmt: skip
    yield LLMClient._search(params, lambda rate, concurrency: samples.llm_records(), {"ttft_ms": 500.0})[1]
    yield merged_from_nodes(validate({}, "kinds/llm", "test"))
    until = {"metric": "ttft", "stat": "median", "rel_ci": 0.5, "max_duration_s": 60, "min_requests": 3}
    params = validate({"requests": 0, "until": until, "warmup_rule": "mser5"}, "kinds/llm", "test")
    records = samples.llm_records()
    yield stopping.stop_metrics(records, params, stopping.Until.of(params), True, 0)


def merged_from_nodes(params: dict[str, Any]) -> list[Metric]:
    """A point loaded from two client nodes (aibench.clients.fanout), each sending the sample records."""
    parts = [
        {"rank": rank, "host": f"node{rank}", "offset_s": 0.001 * rank, "rtt_s": 0.0002, "origin_wall": 100.0,
         "started": 100.0, "ended": 102.0, "model": "m", "replicas": 1,
         "records": [dataclasses.asdict(r) for r in samples.llm_records()]}
        for rank in (0, 1)
    ]  # fmt: skip
    return _merged(LLMClient(), parts, params, start_at=100.0)[0].metrics


def chroma_metric_sets() -> Iterator[list[Metric]]:
    for mode in ("closed", "open"):
        params = {"batch_size": 100, "k": 2, "mode": mode, "rate": 10}
        batches, exact = samples.CHROMA_BATCHES, samples.CHROMA_EXACT
        yield chroma_metrics.summarize(batches, samples.chroma_queries(), exact, params)


def client_metrics() -> dict[str, list[Metric]]:
    """Client kind -> every metric its summarising functions emit on the synthetic inputs."""
    return {
        "llm": [m for ms in llm_metric_sets() for m in ms],
        "chroma": [m for ms in chroma_metric_sets() for m in ms],
        "redis-benchmark": parse_csv(samples.REDIS_CSV),
        "sysbench": parse_report(samples.SYSBENCH_REPORT),
    }


def rows_of(metrics: list[Metric]) -> list[dict[str, Any]]:
    return [{"metric": m.name, "stat": m.stat, "value": m.value, "unit": m.unit, "source": "client",
             "formula": m.formula, **m.labels} for m in metrics]  # fmt: skip


def derived_rows(kind: str, metrics: list[Metric]) -> list[dict[str, Any]]:
    """The efficiency rows of a point of ``kind`` whose service used 2 cores and 1 GPU."""
    prometheus = [{"metric": s, "stat": "mean", "value": v, "unit": "", "source": "prometheus",
                   "formula": prometheus_window(s)}
                  for s, v in (("cpu_cores", 2.0), ("gpu_count", 1.0))]  # fmt: skip
    return efficiency_rows(kind, [*rows_of(metrics), *prometheus])


def server_frame(histograms: bool) -> pd.DataFrame:
    """metrics.csv rows of a server's own series over a 10 s window: llama.cpp's (gauges, counters) or,
    with ``histograms``, vLLM's (gauges, counters, histograms)."""
    rows = []
    for t in range(11):
        series = {name: float(t % 3) for name in GAUGES}
        series |= {r.counter: 5.0 * t for r in RATES.values()}
        if histograms:
            for h in HISTOGRAMS.values():
                series |= {f"{h.series}_sum": 0.1 * t, f"{h.series}_count": float(t)}
                for le in ("0.05", "0.1", "+Inf"):
                    rows.append({"series": f"{h.series}_bucket", "timestamp": 100.0 + t, "value": float(t),
                                 "labels": f"le={le}"})  # fmt: skip
        else:
            series |= {n: 0.2 * t for r in RATIOS.values() for n in (r.numerator,)}
        rows += [{"series": k, "timestamp": 100.0 + t, "value": v, "labels": ""} for k, v in series.items()]
    return pd.DataFrame(rows)


def server_metric_rows() -> list[dict[str, Any]]:
    return [*server_rows(server_frame(histograms=False)), *server_rows(server_frame(histograms=True))]


def emitted() -> dict[str, set[str]]:
    """Formula id -> metric names emitted with it: the client kinds, the efficiency rows, and the
    Prometheus rows' formula (aibench.results.formulas.prometheus_window)."""
    out: dict[str, set[str]] = {}
    for kind, metrics in client_metrics().items():
        for m in metrics:
            out.setdefault(formula_id(m.formula), set()).add(m.name)
        for row in derived_rows(kind, metrics):
            out.setdefault(formula_id(row["formula"]), set()).add(row["metric"])
    for series in SERIES:
        out.setdefault(formula_id(prometheus_window(series)), set()).add(series)
    for row in server_metric_rows():
        out.setdefault(formula_id(row["formula"]), set()).add(row["metric"])
    return out


def test_every_emitted_formula_id_is_documented_for_its_metric() -> None:
    docs = documented()
    for fid, names in emitted().items():
        assert fid in docs, f"formula id {fid!r} (metrics {sorted(names)}) is not in docs/metrics.md"
        listed = docs[fid]
        if not any("<" in name for name in listed) and fid != "prometheus.window":  # placeholder rows
            assert names <= listed, f"{fid}: docs/metrics.md lists {sorted(listed)}, emitted {sorted(names)}"


def test_every_documented_formula_id_is_emitted() -> None:
    assert sorted(set(documented()) - set(emitted())) == []


def test_every_kind_and_source_emits_formula_ids_in_one_stat_vocabulary() -> None:
    metrics = client_metrics()
    assert set(metrics) == set(CLIENTS.names())  # a new kind needs its synthetic point here
    for kind, ms in metrics.items():
        assert ms, kind
        for m in ms:
            assert m.formula and " " not in formula_id(m.formula), (kind, m)
            assert m.stat in VOCABULARY, (kind, m)
        efficiency = derived_rows(kind, ms)
        assert {r["metric"].rsplit("_per_", 1)[1] for r in efficiency} == {"core", "gpu"}, kind


def test_formula_parameters_name_what_the_number_depends_on() -> None:
    by = {(m.name, m.stat): m.formula for m in next(llm_metric_sets())}
    tokens = "llm.output_token_throughput;tokens_from=usage;ci=batch-means"
    assert by[("output_token_throughput", "mean")] == tokens
    assert by[("goodput", "mean")] == "llm.goodput;slo=ttft<=infms,tpot<=infms;ci=batch-means"
    assert ("slo_attainment", "mean") not in by  # no SLO set: nothing to attain
    with_slo = {(m.name, m.stat): m.formula for m in list(llm_metric_sets())[1]}
    attained = "llm.slo_attainment;slo=ttft<=200.0ms,tpot<=50.0ms;ci=wilson"
    assert with_slo[("slo_attainment", "mean")] == attained
    search = {m.name: m.formula for m in list(llm_metric_sets())[2]}
    assert search["slo_max_concurrency"] == "llm.slo_max;search=concurrency;slo=p99_ttft<=500ms,p99_tpot<=0ms"
    rows = derived_rows("sysbench", parse_report(samples.SYSBENCH_REPORT))
    assert {r["formula"] for r in rows} == {"efficiency.per_core;throughput=transactions_per_s",
                                            "efficiency.per_gpu;throughput=transactions_per_s"}  # fmt: skip


def test_each_kind_presents_metrics_it_emits() -> None:
    for kind, metrics in client_metrics().items():
        shown = CLIENTS.get(kind).presentation
        names = {m.name for m in metrics}
        assert shown.metrics() <= names, (kind, shown.metrics() - names)
        pairs = {(m.name, m.stat) for m in metrics}
        for stats in (*[p for p in shown.panels if p.source == "client"], *shown.headlines):
            assert {(stats.metric, s) for s in stats.stats} <= pairs, (kind, stats)
    server = {r["metric"] for r in server_metric_rows()}
    for kind in CLIENTS.names():
        shown = CLIENTS.get(kind).presentation
        assert shown.server_metrics() <= server, (kind, shown.server_metrics() - server)
    assert {"server_requests_running", "server_kv_cache_usage"} <= LLMClient.presentation.server_metrics()


def test_every_resource_series_is_documented() -> None:
    """The series table of docs/metrics.md ("Resources") names every series a service kind reads back
    from Prometheus, and no other."""
    listed: set[str] = set()
    in_table = False
    for line in DOC.read_text().splitlines():
        row = cells(line)
        in_table = bool(row) and (in_table or row[0] == "series")
        if in_table and row[0] != "series":
            listed.update(re.findall(r"`([^`]+)`", row[0]))
    queried = {"targets_up"}  # every deployment's, added by aibench.monitoring.prometheus
    for kind in SERVICES.names():
        queried.update(SERVICES.create(kind).resource_queries())
    assert listed == queried


def test_prometheus_rows_carry_their_formula_id(tmp_path: Path) -> None:
    metrics_csv = tmp_path / "metrics.csv"
    metrics_csv.write_text("series,value\n" + "".join(f"{s},1.5\n{s},2.5\n" for s in SERIES))
    rows = resource_rows(metrics_csv)
    assert {(r["metric"], r["stat"]) for r in rows} == {(s, stat) for s in SERIES for stat in ("mean", "max")}
    assert all(r["formula"] == prometheus_window(r["metric"]) for r in rows)
