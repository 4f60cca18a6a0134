"""The inference server's own view of each point: its /metrics, scraped by the run's Prometheus.

Each LLM kind maps the canonical raw series (aibench.monitoring.server_series) to PromQL over its
server's metric names (llama.cpp's ``llamacpp:*``, vLLM's ``vllm:*``); the point's scrape stores them in
its metrics.csv like every other series, and ``server_rows`` turns them into the point's server-side
figures (source ``server`` in the tidy table; docs/metrics.md, "Server-side metrics"). The names in
metrics.csv are the contract, so a run's figures regenerate from its files alone, whatever kind served
it.

- gauges (``server_requests_running``, ...): mean and max over the point's window, as resources are;
- counters (``server_output_tokens_total``, ...): their increase over the window, divided by its length
  (a throughput) or by another counter's increase (a time per token);
- histograms (``server_ttft_seconds`` as ``_bucket`` rows, one per ``le``, plus ``_sum`` and ``_count``):
  the requests observed in the window (bucket increases), their mean and quantiles interpolated within
  buckets as Prometheus' histogram_quantile does.

Increases are taken between the first and last evaluation of the window (aibench.monitoring.prometheus
scrape_window: aligned on the window's end, one step past it), so they are exact for what the server had
counted at those scrapes; a counter that advances only when a request ends (llama.cpp's) gives a noisy
rate on windows of a few requests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from aibench.monitoring.server_series import (
    GAUGES,
    HISTOGRAMS,
    QUANTILES,
    RATES,
    RATIOS,
    SOURCE,
    is_server_series,
)
from aibench.results.formulas import formula


def _increase(samples: pd.DataFrame) -> tuple[float, float]:
    """(increase, seconds) of one counter from its first to its last sample (NaN when < 2). A drop is a
    counter reset (a restarted server): as Prometheus' increase() does, the value after it counts from 0."""
    ordered = samples.sort_values("timestamp")
    if len(ordered) < 2:
        return math.nan, math.nan
    values = ordered["value"].to_numpy(dtype=float)
    steps = np.diff(values)
    increase = float(np.where(steps >= 0, steps, values[1:]).sum())
    return increase, float(ordered["timestamp"].iloc[-1] - ordered["timestamp"].iloc[0])


def histogram_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """Prometheus' histogram_quantile over cumulative bucket counts ``cumulative`` with upper
    ``bounds`` (ascending, the last +Inf): linear within the bucket the rank falls in, the first bucket
    from 0, and the largest finite bound when the rank is in the +Inf bucket."""
    total = cumulative[-1]
    if total <= 0 or len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan  # as histogram_quantile: no +Inf bucket, no quantile
    rank = q * total
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds) - 1:  # the +Inf bucket
        return float(bounds[-2])
    upper = float(bounds[index])
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    inside = float(cumulative[index]) - below
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


def _le(labels: str) -> float:
    for item in str(labels).split(";"):
        key, _, value = item.partition("=")
        if key == "le":
            return math.inf if value in ("+Inf", "Inf", "inf") else float(value)
    raise ValueError(f"a histogram bucket row without an le label: {labels!r}")


def _histogram_rows(name: str, raw: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    buckets = frame[frame["series"] == f"{raw}_bucket"]
    count, _ = _increase(frame[frame["series"] == f"{raw}_count"])
    total, _ = _increase(frame[frame["series"] == f"{raw}_sum"])
    if buckets.empty or not count > 0:  # also NaN: fewer than two samples
        return []
    by_le = sorted(
        ((_le(labels), _increase(group)[0]) for labels, group in buckets.groupby("labels")),
        key=lambda item: item[0],
    )
    bounds = np.array([b for b, _ in by_le])
    cumulative = np.maximum.accumulate(np.nan_to_num(np.array([c for _, c in by_le]), nan=0.0))
    how = formula("server.histogram", series=raw)
    rows = [_row(name, "mean", 1000.0 * total / count, "ms", how)]
    rows.append(_row(name, "count", count, HISTOGRAMS[name].observes, how))
    for stat, q in QUANTILES:
        rows.append(_row(name, stat, 1000.0 * histogram_quantile(q, bounds, cumulative), "ms", how))
    return rows


def _row(name: str, stat: str, value: float, unit: str, how: str) -> dict[str, Any]:
    return {
        "metric": name, "stat": stat, "value": float(value), "unit": unit, "source": SOURCE, "formula": how
    }  # fmt: skip


def server_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The point's server-side figures from its metrics.csv rows (``frame``: series, timestamp,
    value, labels); nothing for a server that exported none of the raw series."""
    frame = frame[frame["series"].map(is_server_series) & frame["value"].notna()]
    if frame.empty:
        return []
    present = set(frame["series"])
    rows: list[dict[str, Any]] = []
    for name, gauge in GAUGES.items():
        values = frame.loc[frame["series"] == name, "value"] * gauge.scale
        if len(values):
            how = formula("server.gauge", series=name)
            rows += [_row(name, "mean", values.mean(), gauge.unit, how),
                     _row(name, "max", values.max(), gauge.unit, how)]  # fmt: skip
    for name, rate in RATES.items():
        if rate.counter in present:
            increase, seconds = _increase(frame[frame["series"] == rate.counter])
            if seconds > 0:  # False for NaN too
                rows.append(_row(name, "mean", increase / seconds, rate.unit,
                                 formula("server.counter_rate", counter=rate.counter)))  # fmt: skip
    histograms = {name for name, h in HISTOGRAMS.items() if f"{h.series}_bucket" in present}
    for name, ratio in RATIOS.items():
        if name in histograms or not {ratio.numerator, ratio.denominator} <= present:
            continue
        numerator, _ = _increase(frame[frame["series"] == ratio.numerator])
        denominator, _ = _increase(frame[frame["series"] == ratio.denominator])
        if denominator > 0:  # False for NaN too
            how = formula("server.counter_ratio", numerator=ratio.numerator, denominator=ratio.denominator)
            rows.append(_row(name, "mean", ratio.scale * numerator / denominator, ratio.unit, how))
    for name in sorted(histograms):
        rows += _histogram_rows(name, HISTOGRAMS[name].series, frame)
    return [r for r in rows if math.isfinite(r["value"])]
