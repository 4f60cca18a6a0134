"""A client kind's presentation drives the sweep figure, the paper's headline table and the efficiency
rows (aibench.clients.presentation): the data each of them takes from a tidy table."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from aibench import plots
from aibench.clients import CLIENTS
from aibench.paper import headline_table
from aibench.results.efficiency import efficiency_rows


def row(point: str, metric: str, stat: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"experiment": "e", "point": point, "repeat": 0, "status": "ok", "source": "client",
            "metric": metric, "stat": stat, "value": value, "unit": unit, **extra}  # fmt: skip


def chroma_table() -> pd.DataFrame:
    rows = []
    for ef, qps, recall in ((1, 900.0, 0.6), (64, 400.0, 0.97)):
        point = dict(point=f"ef_search-{ef}_r0", param_ef_search=ef)
        rows += [row(metric="queries_per_s", stat="mean", value=qps, unit="queries/s", **point),
                 row(metric="query_latency", stat="median", value=1000 / qps, unit="ms", **point),
                 row(metric="query_latency", stat="p99", value=3000 / qps, unit="ms", **point),
                 row(metric="insert_throughput", stat="mean", value=5000.0, unit="vectors/s", **point),
                 row(metric="recall", stat="mean", value=recall, unit="fraction", k="10",
                     **point)]  # fmt: skip
    return pd.DataFrame(rows)


def test_sweep_figure_draws_the_kinds_panels_then_its_tradeoff(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    plots.sweep_figure(chroma_table(), "e", "ef_search", ["ef_search"], [], "chroma")
    axes = drawn[0].axes
    assert [ax.get_title() for ax in axes] == [
        "Queries vs ef_search", "Query latency vs ef_search", "Insert throughput vs ef_search",
        "Recall vs QPS",
    ]  # fmt: skip
    assert axes[1].get_legend_handles_labels()[1] == ["median", "p99"]
    (recall,) = axes[3].get_lines()
    assert list(recall.get_xdata()) == [900.0, 400.0] and list(recall.get_ydata()) == [0.6, 0.97]
    assert axes[3].get_xlabel() == "queries_per_s (mean)"
    plt.close("all")


def llm_table(server: bool) -> pd.DataFrame:
    rows = []
    for c, tput, running, waiting in ((1, 30.0, 1.0, 0.0), (8, 60.0, 4.0, 3.5)):
        point = dict(point=f"concurrency-{c}_r0", param_concurrency=c, service="llamacpp")
        rows += [row(metric="output_token_throughput", stat="mean", value=tput, unit="tokens/s", **point),
                 row(metric="ttft", stat="median", value=40.0 * c, unit="ms", **point),
                 row(metric="ttft", stat="p99", value=90.0 * c, unit="ms", **point),
                 row(metric="tpot", stat="median", value=28.0, unit="ms", **point),
                 row(metric="tpot", stat="p99", value=50.0, unit="ms", **point)]  # fmt: skip
        if server:
            rows += [row(metric="server_requests_running", stat="mean", value=running, unit="requests",
                         source="server", **point),
                     row(metric="server_requests_waiting", stat="mean", value=waiting, unit="requests",
                         source="server", **point),
                     row(metric="server_output_token_throughput", stat="mean", value=tput, unit="tokens/s",
                         source="server", **point)]  # fmt: skip
    return pd.DataFrame(rows)


def test_llm_sweep_figure_adds_the_servers_view_as_a_second_row(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    plots.sweep_figure(llm_table(server=True), "e", "concurrency", ["concurrency"], [], "llm")
    shown = [ax for ax in drawn[0].axes if ax.get_visible()]
    titles = [ax.get_title() for ax in shown]
    assert titles[:4] == ["Output token throughput vs concurrency", "TTFT vs concurrency",
                          "TPOT vs concurrency", "Latency vs throughput"]  # fmt: skip
    queue = shown[titles.index("Requests at the server vs concurrency")]
    labels = queue.get_legend_handles_labels()[1]
    assert labels == ["requests_running, mean", "requests_waiting, mean"]
    legends = [label for ax in shown for label in ax.get_legend_handles_labels()[1]]
    assert legends and not [label for label in legends if "=" in label]  # no raw "stat=mean" legends
    waiting = queue.get_lines()[-1]  # errorbar: the data line of the last series
    assert list(waiting.get_ydata()) == [0.0, 3.5]
    # llama.cpp exports no KV-cache usage: the panel says so instead of drawing zeros
    kv = shown[titles.index("KV-cache usage (server)")]
    assert [t.get_text() for t in kv.texts] == ["not exported by llamacpp"] and not kv.get_lines()
    plt.close("all")
    drawn.clear()
    plots.sweep_figure(llm_table(server=False), "e", "concurrency", ["concurrency"], [], "llm")
    assert len([ax for ax in drawn[0].axes if ax.get_visible()]) == 4  # unmonitored: one row
    plt.close("all")


def test_headline_table_follows_the_kind_and_reads_an_older_p50_as_median() -> None:
    rows = []
    for clients in (1, 10):
        point = dict(point=f"clients-{clients}_r0", param_clients=clients, command="GET")
        rows += [row(metric="throughput", stat="mean", value=1000.0 * clients, unit="ops/s", **point),
                 row(metric="latency", stat="p50", value=0.05, unit="ms", **point),  # as runs before 2.0
                 row(metric="latency", stat="p99", value=0.09, unit="ms", **point),
                 row(metric="latency", stat="min", value=0.01, unit="ms", **point)]  # fmt: skip
    table = headline_table(pd.DataFrame(rows), "redis-benchmark", ["clients"])
    assert list(table.columns) == [
        "point", "clients", "command", "throughput mean (ops/s)", "latency median (ms)", "latency p99 (ms)"
    ]  # fmt: skip
    by_point = table.set_index("point")
    assert by_point.loc["clients-10_r0", "throughput mean (ops/s)"] == 10000.0
    assert by_point["latency median (ms)"].tolist() == [0.05, 0.05]


def test_efficiency_divides_each_kinds_own_throughput() -> None:
    prometheus = [{"metric": "cpu_cores", "stat": "mean", "value": 2.0, "source": "prometheus"}]
    for kind in CLIENTS.names():
        throughput = CLIENTS.get(kind).presentation.throughput
        rows = [row("p", throughput, "mean", 10.0, "x/s"), row("p", "other", "mean", 1.0, "x/s"), *prometheus]
        (derived,) = efficiency_rows(kind, rows)
        assert derived["metric"] == f"{throughput}_per_core"
        assert (derived["value"], derived["unit"]) == (5.0, "x/s per core")
    assert efficiency_rows("not-a-kind", [row("p", "throughput", "mean", 1.0, "x/s"), *prometheus]) == []


def swept_chroma_table() -> pd.DataFrame:
    """The chroma table measured on two deployments of a service sweep (hnsw_m 16 and 64)."""
    frames = []
    for m, scale in ((16, 1.0), (64, 0.5)):
        frame = chroma_table().assign(deployment=f"hnsw_m-{m}", **{"service.hnsw_m": m})
        frame.loc[frame["metric"] == "queries_per_s", "value"] *= scale
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_a_service_sweep_draws_a_line_per_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    plots.sweep_figure(swept_chroma_table(), "e", "ef_search", ["ef_search"], [], "chroma")
    queries, _, _, tradeoff = drawn[0].axes
    assert queries.get_legend_handles_labels()[1] == ["mean, hnsw_m 16", "mean, hnsw_m 64"]
    assert [list(line.get_ydata()) for line in queries.get_lines()[::3]] == [[900.0, 400.0], [450.0, 200.0]]
    assert tradeoff.get_legend_handles_labels()[1] == ["recall mean, hnsw_m 16", "recall mean, hnsw_m 64"]
    assert [list(line.get_xdata()) for line in tradeoff.get_lines()] == [[900.0, 400.0], [450.0, 200.0]]
    plt.close("all")


def test_the_headline_table_keeps_each_deployments_rows() -> None:
    table = headline_table(swept_chroma_table(), "chroma", ["ef_search"])
    assert list(table.columns[:4]) == ["deployment", "service.hnsw_m", "point", "ef_search"]
    assert table["deployment"].tolist() == ["hnsw_m-16", "hnsw_m-16", "hnsw_m-64", "hnsw_m-64"]


def test_the_scaling_figure_draws_each_line_beside_its_ideal(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    rows = []
    for replicas, tput in ((1, 30.0), (2, 50.0), (4, 80.0)):
        point = dict(point="concurrency-8_r0", param_concurrency=8, deployment=f"replicas-{replicas}",
                     **{"service.replicas": replicas})  # fmt: skip
        rows += [row(metric="output_token_throughput", stat="mean", value=tput, unit="tokens/s", **point),
                 row(metric="ttft", stat="p99", value=900.0 / replicas, unit="ms", **point)]  # fmt: skip
    plots.scaling_figure(pd.DataFrame(rows), "e", "replicas", ["concurrency"], [], "llm")
    throughput, tail = drawn[0].axes
    measured, ideal = throughput.get_lines()
    assert list(measured.get_ydata()) == [30.0, 50.0, 80.0] and list(ideal.get_ydata()) == [30.0, 60.0, 120.0]
    assert ideal.get_linestyle() == "--" and ideal.get_color() == measured.get_color()
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["1", "2", "4"]
    assert list(tail.get_lines()[0].get_ydata()) == [900.0, 450.0, 225.0]
    assert tail.get_title() == "ttft p99 vs replicas"
    plt.close("all")


def test_error_bars_are_the_points_intervals_and_a_low_n_stat_is_hollow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    rows = []
    for c, (low, high, low_n) in ((1, (35.0, 45.0, False), ), (8, (70.0, None, True), )):
        point = dict(point=f"concurrency-{c}_r0", param_concurrency=c)
        rows += [row(metric="ttft", stat="p99", value=40.0 * c / (1 + (c > 1)), unit="ms", ci_low=low,
                     ci_high=high, n=50, low_n=low_n, **point),
                 row(metric="output_token_throughput", stat="mean", value=30.0, unit="tokens/s", **point)]
    plots.sweep_figure(pd.DataFrame(rows), "e", "concurrency", ["concurrency"], [], "llm")
    ttft = next(ax for ax in drawn[0].axes if ax.get_title() == "TTFT vs concurrency")
    data, *_ = ttft.get_lines()
    assert list(data.get_ydata()) == [40.0, 160.0]
    (segments,) = [c for c in ttft.collections if len(c.get_segments()) == 2]
    spans = [(s[0][1], s[1][1]) for s in segments.get_segments()]
    assert spans == [(35.0, 45.0), (70.0, 160.0)]  # the interval; an open side has no bar
    hollow = ttft.get_lines()[-1]
    assert list(hollow.get_ydata()) == [160.0] and hollow.get_markerfacecolor() == "white"
    plt.close("all")


def test_a_scale_whose_configuration_changes_with_it_gets_no_ideal_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four replicas of TP 1 against one of TP 4: configurations differ, so no linear ideal (four times
    the TP-4 replica is no baseline for them); each count's TP size under its tick."""
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    rows = []
    for replicas, tp, tput in ((4, 1, 300.0), (1, 4, 200.0)):
        point = dict(point="rate-16_r0", param_rate=16, deployment=f"replicas-{replicas}",
                     **{"service.replicas": replicas, "service.tensor_parallel_size": tp})  # fmt: skip
        rows += [row(metric="output_token_throughput", stat="mean", value=tput, unit="tokens/s", **point),
                 row(metric="ttft", stat="p99", value=100.0, unit="ms", **point)]  # fmt: skip
    plots.scaling_figure(pd.DataFrame(rows), "e", "replicas", ["rate"], [], "llm")
    throughput, _ = drawn[0].axes
    assert len(throughput.get_lines()) == 1  # the measured line only
    assert [t.get_text() for t in throughput.get_xticklabels()] == [
        "1\ntensor_parallel_size=4", "4\ntensor_parallel_size=1"
    ]
    assert "no ideal line" in drawn[0].get_suptitle()
    plt.close("all")


def test_a_configuration_keeps_its_colour_in_every_panel_and_a_stat_its_style(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Colour = configuration (here the Redis command and the other swept value), the same in the
    throughput and the latency panel; line style = the statistic."""
    drawn: list[plt.Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, outputs: drawn.append(fig))
    rows = []
    for clients in (1, 2, 4, 8):
        for pipeline in (1, 16):
            for command, scale in (("GET", 1.0), ("SET", 0.8)):
                point = dict(point=f"c{clients}-p{pipeline}_r0", param_clients=clients,
                             param_pipeline=pipeline, command=command)  # fmt: skip
                ops = 1000 * clients * scale
                rows += [row(metric="throughput", stat="mean", value=ops, unit="ops/s", **point),
                         row(metric="latency", stat="p99", value=clients / scale, unit="ms",
                             **point)]  # fmt: skip
    plots.sweep_figure(pd.DataFrame(rows), "e", "clients", ["clients", "pipeline"], [], "redis-benchmark")
    throughput, latency = [ax for ax in drawn[0].axes if ax.get_visible()]
    colours = []
    for ax in (throughput, latency):
        handles, labels = ax.get_legend_handles_labels()
        colours.append({label.split(", ", 1)[1]: handle.lines[0].get_color() for handle, label in
                        zip(handles, labels, strict=True)})  # fmt: skip
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 4, colours
    assert set(colours[0]) == {"GET, pipeline 1", "GET, pipeline 16", "SET, pipeline 1", "SET, pipeline 16"}
    assert {h.lines[0].get_linestyle() for h in throughput.get_legend_handles_labels()[0]} == {"-"}
    assert {h.lines[0].get_linestyle() for h in latency.get_legend_handles_labels()[0]} == {":"}
    # clients doubles: a log2 axis with the measured values as ticks
    assert throughput.get_xscale() == "log" and [t.get_text() for t in throughput.get_xticklabels()] == [
        "1", "2", "4", "8"]  # fmt: skip
    plt.close("all")


def test_log_axes_where_a_parameter_doubles_or_spans_decades() -> None:
    cases = {(1, 2, 4, 8): 2, (1, 2, 4, 8, 16, 32): 2, (1, 10, 100): 10, (1, 3, 30): 10, (10, 20, 30): None,
             (1, 2): None, (0, 1, 2, 4): None, (100, 1000): 10}  # fmt: skip
    for values, base in cases.items():
        assert plots.log_base(pd.Series(values)) == base, values


def test_point_labels_that_would_overlap_are_left_out() -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1, 1.01, 2], [0, 1, 1.0, 2])
    points = [(0.0, 0.0, "c 1"), (1.0, 1.0, "c 2"), (1.01, 1.0, "c 4"), (2.0, 2.0, "c 8")]
    assert plots.label_apart(ax, points) == ["c 1", "c 2", "c 8"]
    assert [t.get_text() for t in ax.texts] == ["c 1", "c 2", "c 8"]
    plt.close(fig)
