"""`aibench results`: a run's numbers at a glance in the terminal.

Per experiment, one table: a row per point (and label: a Redis command, Chroma's k, a client node),
its swept values, then the client kind's headline metrics (its presentation's ``headlines``, the same
as the paper's headline tables), each as ``value [ci_low, ci_high]`` where the point has an interval,
``~`` after a value whose sample is too small for it (``low_n``). A failed point is a row of its own
with its error. Tables are rich's (https://rich.readthedocs.io), read from the points' summaries of a
results directory or an archive (checked as `aibench compare` checks them).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from aibench.archive import RunPoint, read_points
from aibench.clients.presentation import NODE, presentation_of
from aibench.errors import AibenchError
from aibench.files import read_json
from aibench.results.aggregate import SERVICE_PREFIX, deployment_columns, tidy_table
from aibench.results.compare import opened_run
from aibench.results.stats import current_stats
from aibench.rundir import PointDir

#: the width of the tables when the output is not a terminal (a file, a pipe: rich would take 80)
WIDTH = 200
#: label columns a headline row is told apart by, beside the swept values
LABELS = ("command", "k", "batch_size", NODE)


@dataclass
class ExperimentGlance:
    """One experiment's table: its column names and rows of cells, and its points' count by status."""

    experiment: str
    client: str
    columns: list[str]
    rows: list[list[str]]
    failed: int
    points: int


def number(value: Any) -> str:
    """A value as a table shows it: 4 significant digits, no exponent below a million."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def cell(row: pd.Series) -> str:
    """``value [low, high]`` (an open side as ``…``), ``~`` marking a low_n stat."""
    text = number(row["value"])
    low, high = row.get("ci_low"), row.get("ci_high")
    if pd.notna(low) or pd.notna(high):
        text += f" [{number(low) if pd.notna(low) else '…'}, {number(high) if pd.notna(high) else '…'}]"
    if row.get("low_n") is True or row.get("low_n") == 1:
        text += " ~"
    return text


def _failed(points: list[RunPoint]) -> dict[str, str]:
    """The failed points' errors, by point id (the first line; a summary may carry a traceback)."""
    errors = {}
    for p in points:
        summary = read_json(PointDir(p.directory).summary)
        if summary.get("status") != "ok":
            error = str(summary.get("error") or summary.get("status") or "failed").strip()
            errors[p.point] = error.splitlines()[0] if error else "failed"
    return errors


def _splits(data: pd.DataFrame, label: str) -> bool:
    """Whether ``label`` tells numbers of one point apart (Redis' commands, client nodes), rather than
    only qualify a metric (Chroma's recall at k): a row per value then."""
    named = data[data[label].notna()]
    return bool(len(named)) and bool((named.groupby(["point", "metric", "stat"])[label].nunique() > 1).any())


def experiment_glance(experiment: str, points: list[RunPoint]) -> ExperimentGlance:
    client = points[0].client
    swept = list(dict.fromkeys(name for p in points for name in p.swept))
    tidy = current_stats(tidy_table([p.directory for p in points], resources=False))
    data = tidy[(tidy["source"] == "client") & (tidy["status"] == "ok")] if len(tidy) else tidy
    headlines = [(h.metric, stat) for h in presentation_of(client).headlines for stat in h.stats]
    labels = [c for c in LABELS if c in data.columns and _splits(data, c)]
    deployed = [c for c in deployment_columns(data.columns) if c.startswith(SERVICE_PREFIX)]
    keys = [*deployed, *[f"param_{p}" for p in swept], *labels]
    units = {(m, s): data[(data["metric"] == m) & (data["stat"] == s)]["unit"].dropna() for m, s in headlines}
    shown = [(m, s) for m, s in headlines if len(units[(m, s)])]
    columns = ["point", *[k.removeprefix("param_").removeprefix(SERVICE_PREFIX) for k in keys],
               *[f"{m}\n{s} ({units[(m, s)].iloc[0]})" for m, s in shown]]  # fmt: skip
    rows = []
    # sorted by the swept values
    groups = data.groupby([*keys, "point"], dropna=False, sort=True) if len(data) else []
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        cells = [str(values[-1]), *("" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v)
                                    for v in values[:-1])]  # fmt: skip
        for metric, stat in shown:
            hit = group[(group["metric"] == metric) & (group["stat"] == stat)]
            cells.append(cell(hit.iloc[0]) if len(hit) else "-")
        rows.append(cells)
    errors = _failed(points)
    for point, error in errors.items():
        rows.append([point, *([""] * (len(columns) - 2)), f"FAILED: {error}"][: len(columns)]
                    if len(columns) > 1 else [f"{point} FAILED: {error}"])  # fmt: skip
    return ExperimentGlance(experiment, client, columns, rows, len(errors), len(points))


def glance(path: str | os.PathLike[str], experiments: list[str] | None = None) -> list[ExperimentGlance]:
    """Every experiment of the run at ``path`` (a results directory or an archive; only
    ``experiments`` where given), in run order."""
    with opened_run(path) as root:
        points = read_points(root, str(path))
        by_experiment: dict[str, list[RunPoint]] = {}
        for p in points:
            if not experiments or p.experiment in experiments:
                by_experiment.setdefault(p.experiment, []).append(p)
        if experiments and (unknown := sorted(set(experiments) - set(by_experiment))):
            raise AibenchError(f"{path}: no points of experiment {', '.join(unknown)}")
        if not by_experiment:
            raise AibenchError(f"{path}: no points found")
        return [experiment_glance(e, ps) for e, ps in by_experiment.items()]


def tables(glances: list[ExperimentGlance]) -> Iterator[Table]:
    for g in glances:
        ok = g.points - g.failed
        title = f"{g.experiment} ({g.client}): {ok} of {g.points} points ok"
        table = Table(title=title, title_justify="left", header_style="bold")
        for name in g.columns:
            table.add_column(name, justify="right" if "\n" in name else "left", overflow="fold")
        for row in g.rows:
            failed = any(c.startswith("FAILED: ") for c in row)
            table.add_row(*row, style="red" if failed else None)
        yield table


def print_results(
    path: str | os.PathLike[str], console: Console | None = None, experiments: list[str] | None = None
) -> int:
    """Print the run's tables; the number of failed points."""
    console = console or Console(width=None if sys.stdout.isatty() else WIDTH)
    glances = glance(path, experiments)
    for table in tables(glances):
        console.print(table)
        console.print()
    console.print("[value [95% interval]; ~ = too few samples to bound it (low_n): docs/metrics.md]",
                  markup=False)  # fmt: skip
    return sum(g.failed for g in glances)
