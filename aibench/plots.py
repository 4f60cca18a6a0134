"""Figures from the tidy table: each client kind's panels against each swept parameter and its trade-off
panel (both from the kind's presentation, aibench.clients.presentation), the TTFT distribution (LLM,
from raw records) and resource use over each point's window."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from aibench.clients.presentation import NODE, SUMMED, Panel, Stats, Tradeoff, presentation_of, whole_point
from aibench.results.aggregate import DEPLOYMENT, SERVICE_PREFIX, deployment_columns
from aibench.results.stats import current_stats


def _label(keys: tuple, names: list[str]) -> str:
    """A line's legend as a reader says it ("p99, GET, pipeline 16"): a metric by its name (server_
    dropped), a stat or Redis command by its value, a client node as "node 0" or "sum over nodes",
    anything else as "<name> <value>"."""
    parts = []
    for name, value in zip(names, keys, strict=True):
        if name == "metric":
            parts.append(str(value).removeprefix("server_"))
        elif name in ("stat", "command"):
            parts.append(str(value))
        elif name == NODE:
            parts.append("sum over nodes" if str(value) == SUMMED else f"node {value}")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "all"


def _save(fig: plt.Figure, outputs: list[str | os.PathLike[str]]) -> None:
    for output in outputs:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=120)
    plt.close(fig)


def _x_axis(ax: plt.Axes, values: pd.Series, param: str) -> None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if len(numbers) and numbers.min() > 0 and numbers.max() / numbers.min() >= 10:
        ax.set_xscale("log")
        ticks = sorted(numbers.unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel(param)


def sweep_figure(
    table: pd.DataFrame,
    experiment: str,
    param: str,
    swept: list[str],
    outputs: list[str | os.PathLike[str]],
    client: str,
) -> None:
    """The client kind's panels against ``param``: one line per stat, label (e.g. Redis command) and
    combination of the other swept parameters; mean over repeats, error bars from min to max. Panels
    of the server's own metrics form a second row when the points have any (monitored runs)."""
    table = current_stats(table)
    data = table[(table["experiment"] == experiment) & (table["status"] == "ok")]
    shown = presentation_of(client)
    client_panels = [p for p in shown.panels if p.source == "client"]
    server_panels = [p for p in shown.panels if p.source == "server"]
    if not (data["source"] == "server").any():
        server_panels = []
    first_row = len(client_panels) + (1 if shown.tradeoff else 0)
    columns = max(first_row, len(server_panels))
    rows = 2 if server_panels else 1
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.8 * columns, 4 * rows), constrained_layout=True, squeeze=False
    )
    for ax in axes.flat:
        ax.set_visible(False)
    kinds = data["service"].dropna().unique() if "service" in data.columns else []
    services = ", ".join(sorted(map(str, kinds))) or "this server"
    for ax, panel in zip(axes[0], client_panels, strict=False):
        _panel(ax, data, panel, param, swept)
    for ax, panel in zip(axes[1] if rows == 2 else [], server_panels, strict=False):
        _panel(ax, data, panel, param, swept, missing=f"not exported by {services}")
    if shown.tradeoff:
        ax = axes[0][first_row - 1]
        ax.set_visible(True)
        _tradeoff_panel(ax, data[data["source"] == "client"], param, shown.throughput, shown.tradeoff)
    fig.suptitle(experiment)
    _save(fig, outputs)


def _panel(
    ax: plt.Axes, data: pd.DataFrame, panel: Panel, param: str, swept: list[str], missing: str | None = None
) -> None:
    """One panel: a line per metric (when it shows several), stat, label and other swept value. With no
    rows it stays hidden, or says ``missing`` (a server that does not export the metric)."""
    subset = data[panel.rows(data)]
    column = f"param_{param}"
    if subset.empty:
        if missing is not None:
            ax.set_visible(True)
            ax.set_title(panel.title)
            ax.text(0.5, 0.5, missing, ha="center", va="center", transform=ax.transAxes, fontsize="small")
            ax.set_xticks([])
            ax.set_yticks([])
        return
    ax.set_visible(True)
    # a line per label value: a Redis command, a client node (its own numbers, and the nodes' sum)
    labels = [c for c in ("command", NODE) if c in subset.columns and subset[c].notna().any()]
    group_keys = (["metric"] if panel.also else []) + ["stat"] + labels
    group_keys += [f"param_{p}" for p in swept if p != param] + _deployment_keys(subset)
    names = [k.removeprefix("param_").removeprefix(SERVICE_PREFIX) for k in group_keys]
    for keys, group in subset.groupby(group_keys, dropna=False):
        by_x = _bars(group, column)
        label = _label(keys if isinstance(keys, tuple) else (keys,), names)
        bars = ax.errorbar(by_x.index.to_numpy(), by_x["mean"], yerr=[by_x["below"], by_x["above"]],
                           marker="o", capsize=3, label=label)  # fmt: skip
        small = by_x[by_x["low_n"]]
        if not small.empty:  # a stat its sample cannot estimate: drawn hollow
            ax.plot(small.index.to_numpy(), small["mean"], "o", markerfacecolor="white",
                    markeredgecolor=bars.lines[0].get_color(), zorder=3)  # fmt: skip
    _x_axis(ax, subset[column], param)
    ax.set_ylabel(f"{panel.title} ({subset['unit'].iloc[0]})")
    ax.set_title(f"{panel.title} vs {param}")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")


def _bars(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per x: the mean over repeats and its error bar: the 95% interval of a single measurement
    (ci_low, ci_high; a side it leaves open has no bar), the min-max over repeats where there are
    several; and whether any repeat was ``low_n``."""
    rows = {}
    for x, at in group.groupby(column):
        mean = float(at["value"].mean())
        if len(at) == 1 and "ci_low" in at.columns:
            low, high = pd.to_numeric(at["ci_low"]).iloc[0], pd.to_numeric(at["ci_high"]).iloc[0]
            below = mean - low if pd.notna(low) else 0.0
            above = high - mean if pd.notna(high) else 0.0
        else:
            below, above = mean - float(at["value"].min()), float(at["value"].max()) - mean
        small = bool(at["low_n"].fillna(False).astype(bool).any()) if "low_n" in at.columns else False
        rows[x] = {"mean": mean, "below": max(below, 0.0), "above": max(above, 0.0), "low_n": small}
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def _deployment_keys(data: pd.DataFrame) -> list[str]:
    """A service sweep's value columns (``service.io_threads``): a line per deployment."""
    return [c for c in deployment_columns(data.columns) if c != DEPLOYMENT and data[c].notna().any()]


def scaling_figure(
    table: pd.DataFrame, experiment: str, scale: str, swept: list[str], outputs: list[str | os.PathLike[str]],
    client: str,
) -> None:
    """Throughput and p99 latency against ``scale`` (a service-sweep value: replicas): a line per value
    of the client's swept parameters and of any other service value swept independently, each beside
    its ideal, linear from the smallest scale measured (dashed). Service values that change with the
    scale (linked: TP size and GPUs following the replicas) make the configurations differ: no ideal
    line then, their values under each tick. The latency is the kind's first client panel with a p99
    (TTFT for LLM loads)."""
    table = current_stats(table)
    mine = (table["experiment"] == experiment) & (table["status"] == "ok")
    data = table[mine & (table["source"] == "client")]
    column = f"{SERVICE_PREFIX}{scale}"
    shown = presentation_of(client)
    latency = next(p.metric for p in shown.panels if p.source == "client" and "p99" in p.stats
                   and p.metric != shown.throughput)  # fmt: skip
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 4), constrained_layout=True)
    varied = [c for c in deployment_columns(data.columns)
              if c not in (DEPLOYMENT, column) and data[c].nunique() > 1]  # fmt: skip
    linked = [c for c in varied if (data.groupby(column)[c].nunique() <= 1).all()]
    keys = [f"param_{p}" for p in swept] + [c for c in varied if c not in linked]
    names = [k.removeprefix("param_").removeprefix(SERVICE_PREFIX) for k in keys]
    groups = data.groupby(keys, dropna=False) if keys else [((), data)]
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        label = _label(values, names) if keys else "all points"
        throughput = _mean_by(group, column, shown.throughput, "mean").sort_index()
        if throughput.empty:
            continue
        x = throughput.index.to_numpy(dtype=float)
        (line,) = left.plot(x, throughput.to_numpy(), marker="o", label=label)
        if not linked:
            ideal = throughput.iloc[0] * x / x[0]
            left.plot(x, ideal, linestyle="--", color=line.get_color(), alpha=0.6,
                      label=f"ideal (linear from {scale}={x[0]:g})")  # fmt: skip
        tail = _mean_by(group, column, latency, "p99").sort_index()
        right.plot(tail.index.to_numpy(dtype=float), tail.to_numpy(), marker="o", label=label)
    units = {m: data[data["metric"] == m]["unit"].iloc[0] for m in (shown.throughput, latency)
             if (data["metric"] == m).any()}  # fmt: skip
    for ax, metric, title in ((left, shown.throughput, "Throughput"), (right, latency, f"{latency} p99")):
        _x_axis(ax, data[column], scale)
        measured = sorted(pd.to_numeric(data[column], errors="coerce").dropna().unique())
        ticks = [f"{v:g}" for v in measured]  # counts: only those measured
        if linked:  # each count's configuration under it
            first = data.groupby(column).first()
            shown = [c.removeprefix(SERVICE_PREFIX) for c in linked]
            ticks = [t + "".join(f"\n{name}={first.loc[v, c]}" for name, c in zip(shown, linked, strict=True))
                     for t, v in zip(ticks, measured, strict=True)]  # fmt: skip
        ax.set_xticks(measured, ticks)
        ax.set_title(f"{title} vs {scale}")
        ax.set_ylabel(f"{metric} ({units.get(metric, '')})")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    following = ", ".join(c.removeprefix(SERVICE_PREFIX) for c in linked)
    note = f" ({following} change with it: no ideal line)" if linked else ""
    fig.suptitle(f"{experiment}: scaling with {scale}{note}")
    _save(fig, outputs)


def _mean_by(data: pd.DataFrame, column: str, metric: str, stat: str) -> pd.Series:
    """``stat`` of ``metric`` per value of ``column``, the mean over repeats (of whole-point rows)."""
    return data[Stats(metric, (stat,)).rows(data) & whole_point(data)].groupby(column)["value"].mean()


def _tradeoff_panel(
    ax: plt.Axes, data: pd.DataFrame, param: str, throughput: str, tradeoff: Tradeoff
) -> None:
    column = f"param_{param}"
    keys = _deployment_keys(data)
    groups = data.groupby(keys, dropna=False) if keys else [((), data)]
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        deployed = _label(values, [k.removeprefix(SERVICE_PREFIX) for k in keys]) if keys else ""
        x = _mean_by(group, column, throughput, "mean")
        for metric, stat in tradeoff.series:
            y = _mean_by(group, column, metric, stat)
            both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").sort_index()
            if both.empty:
                continue
            label = f"{metric} {stat}" + (f", {deployed}" if deployed else "")
            ax.plot(both["x"], both["y"], marker="o", label=label)
            for value, row in both.iterrows():
                ax.annotate(f"{param}={value}", (row["x"], row["y"]), fontsize="x-small", alpha=0.7)
    ax.set_xlabel(f"{throughput} (mean)")
    ax.set_ylabel(tradeoff.ylabel)
    ax.set_title(tradeoff.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")


def ttft_cdf_figure(raw_files: dict[str, str | os.PathLike[str]], experiment: str, outputs: list) -> None:
    """Empirical CDF of TTFT per point, from the points' raw records (warm-up and failures excluded)."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for point, path in sorted(raw_files.items()):
        raw = pd.read_csv(io.BytesIO(gzip.decompress(Path(path).read_bytes())))
        ttft = np.sort(raw[(raw["warmup"] == 0) & (raw["status"] == "ok")]["ttft_ms"].to_numpy())
        if ttft.size:
            ax.step(ttft, np.arange(1, ttft.size + 1) / ttft.size, where="post", label=point)
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"{experiment}: TTFT distribution")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    _save(fig, outputs)


#: resource series drawn over each point's window: (series, title, scale, unit)
RESOURCE_PANELS = [
    ("cpu_cores", "Service CPU", 1.0, "cores"),
    ("rss_bytes", "Service memory (RSS)", 2**-20, "MiB"),
    ("node_cpu_busy_cores", "Node CPU busy", 1.0, "cores"),
    ("net_rx_bytes_per_s", "Node network received", 2**-20, "MiB/s"),
    ("gpu_utilization_pct", "GPU utilisation", 1.0, "%"),
    ("gpu_memory_used_bytes", "GPU memory used", 2**-30, "GiB"),
]


def resources_figure(
    metrics_files: dict[str, str | os.PathLike[str]], experiment: str, outputs: list
) -> None:
    """Resource use over each point's window (time from the window's start), a line per point; a
    panel for each series that has samples (GPU panels appear only where a GPU exporter ran)."""
    frames = []
    for point, path in sorted(metrics_files.items()):
        frame = pd.read_csv(path) if Path(path).stat().st_size else pd.DataFrame()
        if not frame.empty:
            frames.append(frame.assign(point=point, t=frame["timestamp"] - frame["timestamp"].min()))
    data = pd.concat(frames) if frames else pd.DataFrame(columns=["series", "point", "t", "value"])
    panels = [p for p in RESOURCE_PANELS if (data["series"] == p[0]).any()] or RESOURCE_PANELS[:1]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.4 * len(panels), 3.6), constrained_layout=True, squeeze=False
    )
    for ax, (series, title, scale, unit) in zip(axes[0], panels, strict=True):
        for point, group in data[data["series"] == series].groupby("point"):
            ax.plot(group["t"], group["value"] * scale, label=point)
        ax.set_title(title)
        ax.set_xlabel("time in the point's window (s)")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"{experiment}: resource use per point")
    _save(fig, outputs)
