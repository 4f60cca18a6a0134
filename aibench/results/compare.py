"""Compare two runs: each metric side by side, its relative change, and whether it is beyond noise.

The noise call is documented in docs/compare.md: per run, the mean over repeats with a 95% Student-t
confidence interval of the mean; a change is "changed" only when the two intervals do not overlap.
"""

from __future__ import annotations

import json
import math
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aibench.archive import extract, read_points
from aibench.errors import AibenchError
from aibench.results.aggregate import BASE_COLUMNS, DEPLOYMENT, SERVICE_PREFIX, deployment_columns, tidy_table
from aibench.results.stats import VOCABULARY, current_stats, t_quantile_975
from aibench.rundir import DEPLOYMENT_SUMMARY_GLOB, SUMMARY_GLOB

DEFAULT_STATS = ("mean", "median", "p99")
DEFAULT_SOURCES = ("client", "server", "derived")
VERDICTS = ("changed", "within noise", "no repeats", "only in A", "only in B")
_REPEAT_SUFFIX = re.compile(r"_r\d+$")
_STAT_ORDER = {s: i for i, s in enumerate(VOCABULARY)}


# --- loading ----------------------------------------------------------------------------------------


def _extract(path: Path, dest: Path) -> Path:
    """Extract the archive into ``dest``; the run's root (its single top directory, e.g. run/)."""
    extract(path, dest)
    tops = list(dest.iterdir())
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else dest


def _table_of(root: Path, label: str | os.PathLike[str]) -> pd.DataFrame:
    """The run's tidy table in today's stat vocabulary, so that an older run compares with a newer one."""
    # every summary read and its names checked first, with errors naming the file and field (an archive
    # or results directory is untrusted input, as for the paper workflow)
    point_dirs = sorted(p.directory for p in read_points(root, str(label)))
    if not point_dirs:
        raise AibenchError(f"{label}: no points found ({SUMMARY_GLOB}, {DEPLOYMENT_SUMMARY_GLOB})")
    return current_stats(tidy_table(point_dirs))


def load_run(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The tidy table of a run, regenerated from its point dirs: a results directory or a .tar.gz archive
    (whose members are under one top directory, run/, mirroring the results directory)."""
    source = Path(path)
    if source.is_dir():
        return _table_of(source, path)
    if not source.is_file():
        raise AibenchError(f"{path}: no such results directory or archive")
    if not tarfile.is_tarfile(source):
        raise AibenchError(f"{path}: neither a results directory nor a tar archive")
    with tempfile.TemporaryDirectory(prefix="aibench-compare-") as tmp:
        return _table_of(_extract(source, Path(tmp)), path)


# --- comparing --------------------------------------------------------------------------------------


def _canon(value: Any) -> str:
    """A grouping key for a param or label value: equal across runs whatever the column dtype."""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _param_label_columns(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    params = [c for c in table.columns if c.startswith("param_")]
    labels = [c for c in table.columns if c not in BASE_COLUMNS and c not in params]
    return params, labels


def _select(
    table: pd.DataFrame,
    metrics: Sequence[str] | None,
    stats: Sequence[str] | None,
    sources: Sequence[str] | None,
    experiments: Sequence[str] | None,
) -> pd.DataFrame:
    keep = table["status"].eq("ok") & table["value"].notna()
    if metrics:
        keep &= table["metric"].isin(metrics)
    if stats:
        keep &= table["stat"].isin(stats)
    if sources:
        keep &= table["source"].isin(sources)
    if experiments:
        keep &= table["experiment"].isin(experiments)
    return table[keep]


def _keyed(table: pd.DataFrame, params: list[str], labels: list[str]) -> pd.DataFrame:
    """Key columns as canonical strings (point id without its _rN suffix), plus the numeric value."""
    out = pd.DataFrame(index=table.index)
    out["experiment"] = table["experiment"].astype(str)
    out["point"] = table["point"].astype(str).str.replace(_REPEAT_SUFFIX, "", regex=True)
    for column in [*params, *labels, "metric", "stat", "unit", "source"]:
        values = table[column] if column in table.columns else pd.Series("", index=table.index)
        out[column] = [_canon(v) for v in values]
    out["value"] = pd.to_numeric(table["value"], errors="coerce")
    return out[out["value"].notna()]


def _summarize(keyed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per key: n, mean over repeats, and the half-width of the 95% confidence interval of the mean."""
    groups = keyed.groupby(keys, sort=False, dropna=False)["value"]
    out = groups.agg(n="count", mean="mean", std="std").reset_index()
    out["ci"] = [
        t_quantile_975(int(n) - 1) * std / math.sqrt(n) if n >= 2 else math.nan
        for n, std in zip(out["n"], out["std"], strict=True)
    ]
    return out.drop(columns="std")


def _verdict(row: pd.Series) -> str:
    if pd.isna(row["n_b"]):
        return "only in A"
    if pd.isna(row["n_a"]):
        return "only in B"
    if row["n_a"] < 2 or row["n_b"] < 2:
        return "no repeats"
    overlap = abs(row["value_b"] - row["value_a"]) <= row["ci_a"] + row["ci_b"]
    return "within noise" if overlap else "changed"


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _sorted(frame: pd.DataFrame, params: list[str], labels: list[str]) -> pd.DataFrame:
    def key(i: int) -> tuple[Any, ...]:
        row = frame.iloc[i]
        return (
            row["experiment"],
            *(_natural(row[c]) for c in params),
            row["point"],
            row["metric"],
            *(_natural(row[c]) for c in labels),
            _STAT_ORDER.get(row["stat"], len(_STAT_ORDER)),
            row["stat"],
            row["source"],
        )

    order = sorted(range(len(frame)), key=key)
    return frame.iloc[order].reset_index(drop=True)


def compare(
    a: pd.DataFrame,
    b: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    stats: Sequence[str] | None = DEFAULT_STATS,
    prometheus: bool = False,
    experiments: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Metrics of run ``a`` and run ``b`` side by side, over repeats, with a verdict on each change.

    Rows are matched on experiment, point id without its repeat suffix, params, labels, metric, stat,
    unit and source. Only points with status ok count. ``metrics`` keeps those metric names (of any
    source); otherwise client, server-side and derived metrics, plus Prometheus series with
    ``prometheus``. ``stats`` None keeps every stat. Columns: the keys, n_a, value_a (mean), ci_a (95% CI
    half-width), the same for b, rel_change = (b - a) / a (NaN when a is 0), verdict (one of VERDICTS)."""
    sources = None if metrics or prometheus else DEFAULT_SOURCES
    a = _select(a, metrics, stats, sources, experiments)
    b = _select(b, metrics, stats, sources, experiments)
    params_a, labels_a = _param_label_columns(a)
    params_b, labels_b = _param_label_columns(b)
    params = sorted(set(params_a) | set(params_b))
    labels = sorted(set(labels_a) | set(labels_b))
    keys = ["experiment", "point", *params, *labels, "metric", "stat", "unit", "source"]
    side_a = _summarize(_keyed(a, params, labels), keys)
    side_b = _summarize(_keyed(b, params, labels), keys)
    merged = side_a.merge(side_b, on=keys, how="outer", suffixes=("_a", "_b"))
    merged = merged.rename(columns={"mean_a": "value_a", "mean_b": "value_b"})
    value_a = merged["value_a"].where(merged["value_a"] != 0)
    merged["rel_change"] = (merged["value_b"] - value_a) / value_a
    merged["verdict"] = merged.apply(_verdict, axis=1) if len(merged) else pd.Series(dtype=str)
    for column in ("n_a", "n_b"):
        merged[column] = merged[column].fillna(0).astype(int)
    columns = [*keys, "n_a", "value_a", "ci_a", "n_b", "value_b", "ci_b", "rel_change", "verdict"]
    return _sorted(merged[columns], params, labels)


# --- printing ---------------------------------------------------------------------------------------


def _number(value: float) -> str:
    if pd.isna(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(value: float, ci: float, n: int) -> str:
    if n == 0:
        return "-"
    return f"{_number(value)} ±{_number(ci)} (n={n})" if n >= 2 else f"{_number(value)} (n=1)"


def _swept(df: pd.DataFrame, params: list[str]) -> dict[str, list[str]]:
    """Per experiment: the params that take more than one value among its rows."""
    return {
        experiment: [c for c in params if group[c].nunique() > 1]
        for experiment, group in df.groupby("experiment", sort=False)
    }


def _join(row: pd.Series, columns: Iterable[str], strip: tuple[str, ...] = ()) -> str:
    def name(column: str) -> str:
        for prefix in strip:
            column = column.removeprefix(prefix)
        return column

    return " ".join(f"{name(c)}={row[c]}" for c in columns if row[c] != "")


def _key_columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The param and label columns of a compare() table: those between point and metric. A service
    sweep's values count as params (shown first), its deployment id as neither (they name it)."""
    columns = list(df.columns)
    middle = columns[columns.index("point") + 1 : columns.index("metric")]
    deployed = deployment_columns(middle)
    params = [c for c in deployed if c != DEPLOYMENT] + [c for c in middle if c.startswith("param_")]
    return params, [c for c in middle if not c.startswith("param_") and c not in deployed]


def _rows(df: pd.DataFrame) -> list[tuple[str, ...]]:
    params, labels = _key_columns(df)
    swept = _swept(df, params)
    rows = []
    for _, row in df.iterrows():
        label_text = _join(row, labels)
        change = "-" if pd.isna(row["rel_change"]) else f"{100 * row['rel_change']:+.1f}%"
        rows.append(
            (
                "*" if row["verdict"] == "changed" else "",
                row["experiment"],
                _join(row, swept[row["experiment"]], strip=("param_", SERVICE_PREFIX)) or row["point"],
                row["metric"] + (f"{{{label_text}}}" if label_text else ""),
                row["stat"],
                row["unit"],
                _cell(row["value_a"], row["ci_a"], row["n_a"]),
                _cell(row["value_b"], row["ci_b"], row["n_b"]),
                change,
                row["verdict"],
            )
        )
    return rows


def _align(row: tuple[str, ...], widths: list[int], right: set[int]) -> list[str]:
    return [
        cell.rjust(w) if i in right else cell.ljust(w)
        for i, (cell, w) in enumerate(zip(row, widths, strict=True))
    ]


def format_table(df: pd.DataFrame) -> str:
    """Aligned text: experiment, swept params, metric{labels}, stat, unit, A and B (mean ±95% CI half-width
    over n repeats), change %, verdict; rows judged "changed" start with ``*``. A verdict count follows."""
    if df.empty:
        return "nothing to compare (no matching metrics in either run)"
    header = ("", "experiment", "params", "metric", "stat", "unit", "A", "B", "change", "verdict")
    rows = [header, *_rows(df)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {6, 7, 8}  # A, B and change are numbers: right-aligned
    lines = ["  ".join(_align(r, widths, right)) for r in rows]
    counts = df["verdict"].value_counts()
    tally = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    footer = f"{tally}. * = the 95% confidence intervals of A and B do not overlap."
    if "no repeats" in counts:
        footer += "\nno repeats = fewer than 2 repeats in a run, so no claim is made (see docs/compare.md)."
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + footer
