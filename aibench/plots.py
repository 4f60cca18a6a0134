"""Figures from the tidy table: throughput and tail latency against each swept parameter."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

PANELS = (
    ("throughput", "mean", "Throughput"),
    ("latency", "p99", "p99 latency"),
)


def _series_label(keys: tuple, names: list[str]) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, keys, strict=True)) or "all"


def sweep_figure(
    table: pd.DataFrame,
    experiment: str,
    param: str,
    swept: list[str],
    outputs: list[str | os.PathLike[str]],
) -> None:
    """Throughput and p99 latency of ``experiment`` against ``param``; one line per command and
    combination of the other swept parameters; mean over repeats with min-max error bars."""
    data = table[
        (table["experiment"] == experiment) & (table["source"] == "client") & (table["status"] == "ok")
    ]
    column = f"param_{param}"
    others = [f"param_{p}" for p in swept if p != param]
    group_keys = (["command"] if "command" in data.columns else []) + others
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4), constrained_layout=True)
    for ax, (metric, stat, title) in zip(axes, PANELS, strict=True):
        subset = data[(data["metric"] == metric) & (data["stat"] == stat)]
        if subset.empty:
            ax.set_visible(False)
            continue
        unit = subset["unit"].iloc[0]
        groups = subset.groupby(group_keys) if group_keys else [((), subset)]
        for keys, group in groups:
            keys = keys if isinstance(keys, tuple) else (keys,)
            stats = group.groupby(column)["value"].agg(["mean", "min", "max"]).sort_index()
            x = stats.index.to_numpy()
            ax.errorbar(
                x,
                stats["mean"],
                yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                marker="o",
                capsize=3,
                label=_series_label(keys, [k.removeprefix("param_") for k in group_keys]),
            )
        values = pd.to_numeric(subset[column], errors="coerce").dropna()
        if len(values) and values.min() > 0 and values.max() / values.min() >= 10:
            ax.set_xscale("log")
            ticks = sorted(values.unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(param)
        ax.set_ylabel(f"{title} ({unit})")
        ax.set_title(f"{title} vs {param}")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(experiment)
    for output in outputs:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=120)
    plt.close(fig)
