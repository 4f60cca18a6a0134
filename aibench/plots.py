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
    anything else as "<name> <value>"; a value the row has not (NaN) is left out."""
    parts = []
    for name, value in zip(names, keys, strict=True):
        if not isinstance(value, str) and pd.isna(value):  # a label this row has not (a server's row)
            continue
        if name == "metric":
            parts.append(str(value).removeprefix("server_"))
        elif name in ("stat", "command"):
            parts.append(str(value))
        elif name == NODE:
            parts.append("sum over nodes" if str(value) == SUMMED else f"node {value}")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "all"


#: a statistic's line style and marker; a line's colour is its configuration's (Palette)
STAT_STYLES = {"mean": ("-", "o"), "median": ("--", "s"), "p90": ("-.", "v"), "p95": ("-.", "D"),
               "p99": (":", "^"), "max": ((0, (1, 3)), "x")}  # fmt: skip
#: the styles of the several series of one panel that are not told apart by their stat alone
SERIES_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (1, 3)), "v"))
COLOURS = tuple(plt.get_cmap("tab10").colors)


class Palette:
    """One colour per configuration (a Redis command, a client node, the other swept values, a
    deployment), the same in every panel of a figure: colours go to the configurations' legends in
    sorted order, so figures of one experiment with the same configurations colour them alike."""

    def __init__(self, configurations: list[str]) -> None:
        self._index = {c: i for i, c in enumerate(sorted(set(configurations)))}

    def colour(self, configuration: str) -> tuple[float, ...]:
        return COLOURS[self._index.get(configuration, 0) % len(COLOURS)]


def _configurations(data: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, str]]:
    """Each configuration of ``data`` over ``keys`` (its values, its legend)."""
    if not keys:
        return [((), "")]
    names = _names(keys)
    out = []
    for values, _ in data.groupby(keys, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append((values, _label(values, names)))
    return out


def _names(keys: list[str]) -> list[str]:
    return [k.removeprefix("param_").removeprefix(SERVICE_PREFIX) for k in keys]


def _save(fig: plt.Figure, outputs: list[str | os.PathLike[str]]) -> None:
    for output in outputs:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=120)
    plt.close(fig)


def log_base(values: pd.Series) -> int | None:
    """The x axis' log base for a parameter's values: 2 where each value doubles the last, or more by a
    power of two (1, 2, 4, 8 concurrency; 1, 4, 16), 10 where they span a factor of 10 otherwise, None
    (linear) else."""
    numbers = np.sort(pd.to_numeric(values, errors="coerce").dropna().unique())
    if len(numbers) < 2 or numbers[0] <= 0:
        return None
    doublings = np.log2(numbers / numbers[0])
    if len(numbers) >= 3 and (np.abs(doublings - np.round(doublings)) < 0.05).all():
        return 2
    return 10 if numbers[-1] / numbers[0] >= 10 else None


def _x_axis(ax: plt.Axes, values: pd.Series, param: str) -> None:
    base = log_base(values)
    if base:
        ax.set_xscale("log", base=base)
        ticks = sorted(pd.to_numeric(values, errors="coerce").dropna().unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
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
    palette = Palette([label for _, label in _configurations(data, _configuration_keys(data, param, swept))])
    for ax, panel in zip(axes[0], client_panels, strict=False):
        _panel(ax, data, panel, param, swept, palette)
    for ax, panel in zip(axes[1] if rows == 2 else [], server_panels, strict=False):
        _panel(ax, data, panel, param, swept, palette, missing=f"not exported by {services}")
    if shown.tradeoff:
        ax = axes[0][first_row - 1]
        ax.set_visible(True)
        client_rows = data[data["source"] == "client"]
        _tradeoff_panel(ax, client_rows, param, shown.throughput, shown.tradeoff, palette)
    fig.suptitle(experiment)
    _save(fig, outputs)


def _configuration_keys(data: pd.DataFrame, param: str, swept: list[str]) -> list[str]:
    """What tells a sweep figure's lines apart besides their stat: a label (a Redis command, a client
    node: its own numbers and the nodes' sum), the other swept parameters, the deployment's values."""
    labels = [c for c in ("command", NODE) if c in data.columns and data[c].notna().any()]
    return labels + [f"param_{p}" for p in swept if p != param] + _deployment_keys(data)


def _panel(
    ax: plt.Axes, data: pd.DataFrame, panel: Panel, param: str, swept: list[str], palette: Palette,
    missing: str | None = None,
) -> None:
    """One panel: a line per metric (when it shows several), stat and configuration, its colour the
    configuration's and its style the stat's. With no rows it stays hidden, or says ``missing`` (a
    server that does not export the metric)."""
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
    series_keys = (["metric"] if panel.also else []) + ["stat"]
    config_keys = _configuration_keys(data, param, swept)
    series = [s if isinstance(s, tuple) else (s,) for s, _ in subset.groupby(series_keys)]
    for keys, group in subset.groupby(series_keys + config_keys, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        what, configuration = keys[: len(series_keys)], keys[len(series_keys) :]
        style, marker = STAT_STYLES[what[-1]] if not panel.also and what[-1] in STAT_STYLES else \
            SERIES_STYLES[series.index(what) % len(SERIES_STYLES)]  # fmt: skip
        colour = palette.colour(_label(configuration, _names(config_keys)) if config_keys else "")
        by_x = _bars(group, column)
        bars = ax.errorbar(by_x.index.to_numpy(), by_x["mean"], yerr=[by_x["below"], by_x["above"]],
                           marker=marker, linestyle=style, color=colour, capsize=3,
                           label=_label(keys, [*series_keys, *_names(config_keys)]))  # fmt: skip
        small = by_x[by_x["low_n"]]
        if not small.empty:  # a stat its sample cannot estimate: drawn hollow
            ax.plot(small.index.to_numpy(), small["mean"], marker, markerfacecolor="white",
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
    ax: plt.Axes, data: pd.DataFrame, param: str, throughput: str, tradeoff: Tradeoff, palette: Palette
) -> None:
    """The kind's trade-off (latency, recall) against its throughput: a line per series and
    deployment, each point labelled with its swept value where the label has room."""
    column = f"param_{param}"
    keys = _deployment_keys(data)
    points: list[tuple[float, float, str]] = []
    groups = data.groupby(keys, dropna=False) if keys else [((), data)]
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        deployed = _label(values, _names(keys)) if keys else ""
        x = _mean_by(group, column, throughput, "mean")
        for number, (metric, stat) in enumerate(tradeoff.series):
            y = _mean_by(group, column, metric, stat)
            both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").sort_index()
            if both.empty:
                continue
            style, marker = SERIES_STYLES[number % len(SERIES_STYLES)]
            label = f"{metric} {stat}" + (f", {deployed}" if deployed else "")
            ax.plot(both["x"], both["y"], marker=marker, linestyle=style, color=palette.colour(deployed),
                    label=label)  # fmt: skip
            points += [(r["x"], r["y"], f"{param} {value:g}" if isinstance(value, float | int) else
                        f"{param} {value}") for value, r in both.iterrows()]  # fmt: skip
    ax.set_xlabel(f"{throughput} (mean)")
    ax.set_ylabel(tradeoff.ylabel)
    ax.set_title(tradeoff.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    label_apart(ax, points)


#: the least distance, in fractions of the axes (x, y), between two labelled points
LABEL_ROOM = (0.12, 0.06)


def label_apart(ax: plt.Axes, points: list[tuple[float, float, str]]) -> list[str]:
    """Label each point with its text unless it lands within LABEL_ROOM of a point already labelled
    (in the axes' final scale); the labels drawn, in order."""
    ax.autoscale_view()
    to_axes = ax.transAxes.inverted()
    placed: list[tuple[float, float]] = []
    drawn = []
    for x, y, text in points:
        at = to_axes.transform(ax.transData.transform((x, y)))
        if any(abs(at[0] - px) < LABEL_ROOM[0] and abs(at[1] - py) < LABEL_ROOM[1] for px, py in placed):
            continue
        placed.append((float(at[0]), float(at[1])))
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize="x-small", alpha=0.8)
        drawn.append(text)
    return drawn


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
