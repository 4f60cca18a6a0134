"""Compare two runs: each metric side by side, its relative change, and whether it is beyond noise.

The noise call is documented in docs/compare.md: per run, a 95% interval of the value: with repeats,
the Student-t interval of their mean; with one repeat, the point's own interval (from its per-request
records, aibench.results.stats). A change is "changed" only when the two intervals do not overlap;
each row names the basis used and the smallest change the two intervals could have shown.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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
VERDICTS = ("changed", "within noise", "no interval", "only in A", "only in B")
#: the basis of a verdict, per side: the repeats' spread, or the single point's own interval
BASES = {("repeats", "repeats"): "repeats", ("point", "point"): "point intervals"}
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


@contextlib.contextmanager
def opened_run(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The root of the run at ``path``: a results directory itself, or a .tar.gz archive (whose
    members are under one top directory, run/, mirroring the results directory) extracted, checked,
    into a temporary directory removed afterwards."""
    source = Path(path)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise AibenchError(f"{path}: no such results directory or archive")
    if not tarfile.is_tarfile(source):
        raise AibenchError(f"{path}: neither a results directory nor a tar archive")
    with tempfile.TemporaryDirectory(prefix="aibench-run-") as tmp:
        yield _extract(source, Path(tmp))


def load_run(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The tidy table of a run, regenerated from its point dirs: a results directory or a .tar.gz archive."""
    with opened_run(path) as root:
        return _table_of(root, path)


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
    for bound in ("ci_low", "ci_high"):  # a point's own interval (runs before schema 2.1 have none)
        out[bound] = pd.to_numeric(table[bound], errors="coerce") if bound in table.columns else math.nan
    return out[out["value"].notna()]


def _summarize(keyed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per key: n, the mean over repeats, ci (the half-width of the 95% Student-t interval of that mean,
    repeats >= 2), within (the mean half-width of the repeats' own intervals), and [low, high]: the
    interval a verdict uses (the repeats' ± ci, or the single point's own) with its basis."""
    keyed = keyed.assign(half=(keyed["ci_high"] - keyed["ci_low"]) / 2)
    groups = keyed.groupby(keys, sort=False, dropna=False)
    out = groups.agg(
        n=("value", "count"), mean=("value", "mean"), std=("value", "std"), within=("half", "mean"),
        point_low=("ci_low", "first"), point_high=("ci_high", "first"),
    ).reset_index()  # fmt: skip
    out["ci"] = [
        t_quantile_975(int(n) - 1) * std / math.sqrt(n) if n >= 2 else math.nan
        for n, std in zip(out["n"], out["std"], strict=True)
    ]
    repeats = out["n"] >= 2
    point = ~repeats & out["point_low"].notna() & out["point_high"].notna()
    out["low"] = (out["mean"] - out["ci"]).where(repeats, out["point_low"].where(point))
    out["high"] = (out["mean"] + out["ci"]).where(repeats, out["point_high"].where(point))
    out["basis"] = np.select([repeats, point], ["repeats", "point"], "")
    return out.drop(columns=["std", "point_low", "point_high"])


def _verdict(row: pd.Series) -> str:
    if pd.isna(row["n_b"]):
        return "only in A"
    if pd.isna(row["n_a"]):
        return "only in B"
    if not (row["basis_a"] and row["basis_b"]):
        return "no interval"
    apart = row["low_b"] > row["high_a"] or row["low_a"] > row["high_b"]
    return "changed" if apart else "within noise"


def _basis(row: pd.Series) -> str:
    """Which intervals the verdict compared (empty when it made no claim)."""
    sides = (row["basis_a"], row["basis_b"])
    if row["verdict"] not in ("changed", "within noise"):
        return ""
    return BASES.get(sides, "repeats (A), point interval (B)" if sides[0] == "repeats" else
                     "point interval (A), repeats (B)")  # fmt: skip


def _detectable(row: pd.Series) -> float:
    """The smallest change, relative to A, the two intervals could have called "changed": the sum of
    their half-widths (a change beyond it takes B's interval clear of A's when both keep their widths)."""
    if row["verdict"] not in ("changed", "within noise") or not row["value_a"]:
        return math.nan
    return ((row["high_a"] - row["low_a"]) + (row["high_b"] - row["low_b"])) / 2 / abs(row["value_a"])


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
    ``prometheus``. ``stats`` None keeps every stat. Columns: the keys, n_a (repeats), value_a (their
    mean), ci_a (the half-width of its 95% Student-t interval, n >= 2), within_a (the mean half-width of
    the repeats' own intervals), low_a/high_a (the interval the verdict used), the same for b,
    rel_change = (b - a) / a (NaN when a is 0), verdict (one of VERDICTS), basis (which intervals it
    compared) and detectable (the smallest change relative to A those intervals could show)."""
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
    for side in ("basis_a", "basis_b"):
        merged[side] = merged[side].fillna("")
    empty = pd.Series(dtype=str)
    merged["verdict"] = merged.apply(_verdict, axis=1) if len(merged) else empty
    merged["basis"] = merged.apply(_basis, axis=1) if len(merged) else empty
    merged["detectable"] = merged.apply(_detectable, axis=1) if len(merged) else pd.Series(dtype=float)
    for column in ("n_a", "n_b"):
        merged[column] = merged[column].fillna(0).astype(int)
    sides = [f"{column}_{side}" for side in "ab" for column in ("n", "value", "ci", "within", "low", "high")]
    columns = [*keys, *sides, "rel_change", "verdict", "basis", "detectable"]
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


def _cell(row: pd.Series, side: str) -> str:
    """A run's value: ± the repeats' half-width (n repeats; the points' own mean half-width beside it),
    or the single point's own interval."""
    n, value = row[f"n_{side}"], row[f"value_{side}"]
    if n == 0:
        return "-"
    if n >= 2:
        within = row[f"within_{side}"]
        inside = f"; within ±{_number(within)}" if pd.notna(within) else ""
        return f"{_number(value)} ±{_number(row[f'ci_{side}'])} (n={n}{inside})"
    if pd.notna(row[f"low_{side}"]):
        return f"{_number(value)} [{_number(row[f'low_{side}'])}, {_number(row[f'high_{side}'])}]"
    return f"{_number(value)} (n=1)"


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
                _cell(row, "a"),
                _cell(row, "b"),
                change,
                "-" if pd.isna(row["detectable"]) else f"{100 * row['detectable']:.1f}%",
                row["verdict"] + (f" ({row['basis']})" if row["basis"] else ""),
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
    header = ("", "experiment", "params", "metric", "stat", "unit", "A", "B", "change", "detectable",
              "verdict")  # fmt: skip
    rows = [header, *_rows(df)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {6, 7, 8, 9}  # A, B, change and detectable are numbers: right-aligned
    lines = ["  ".join(_align(r, widths, right)) for r in rows]
    counts = df["verdict"].value_counts()
    tally = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    footer = (
        f"{tally}. * = the 95% intervals of A and B do not overlap: of the repeats' mean (± half-width, "
        "n repeats), or of a single point's own [low, high];\ndetectable = the smallest change, relative "
        "to A, those two intervals could show."
    )
    if "no interval" in counts:
        footer += (
            "\nno interval = a run with one repeat and no interval of its own for that row (a tool's own "
            "number, or too few samples), so no claim is made (see docs/compare.md)."
        )
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + footer
