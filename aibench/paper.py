"""Paper tables and figures from an archived run alone (raw results + manifest; no service starts).

`make paper RUN=<results dir or run .tar.gz>` runs paper/Snakefile, which reuses the run's own plot and
aggregation scripts on the archived point files and writes paper/tables/ and paper/figures/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aibench.archive import unpack
from aibench.errors import ConfigError
from aibench.files import read_json

#: metrics (name, stats) of each client kind's table in the paper
HEADLINES = {
    "redis-benchmark": [("throughput", ("mean",)), ("latency", ("p50", "p99"))],
    "llm": [("output_token_throughput", ("mean",)), ("ttft", ("median", "p99")), ("tpot", ("median", "p99")),
            ("goodput", ("mean",))],
    "sysbench": [("transactions_per_s", ("mean",)), ("latency", ("mean", "p95"))],
    "chroma": [("queries_per_s", ("mean",)), ("query_latency", ("median", "p99")), ("recall", ("mean",)),
               ("insert_throughput", ("mean",))],
}  # fmt: skip


@dataclass
class ArchivedExperiment:
    name: str
    client: str
    swept: list[str]
    points: dict[str, Path] = field(default_factory=dict)  # point id -> its directory

    @property
    def has_resources(self) -> bool:
        return all((d / "metrics.csv").is_file() for d in self.points.values())


@dataclass
class ArchivedRun:
    root: Path
    experiments: dict[str, ArchivedExperiment]

    def point_dirs(self, experiment: str | None = None) -> list[str]:
        """Point directories in the run's own order (that of its summary.csv)."""
        names = [experiment] if experiment else list(self.experiments)
        return [str(d) for n in names for d in self.experiments[n].points.values()]


def open_run(source: str | Path, workdir: Path) -> ArchivedRun:
    """The run in ``source``: a results directory, or an archive unpacked into ``workdir``/run."""
    source = Path(source)
    if source.is_file():
        root = workdir / "run"
        if not (root / "manifest.json").is_file():
            unpack(source, workdir)
    elif source.is_dir():
        root = source
    else:
        raise ConfigError(f"config field 'run': {source} is neither a results directory nor a run archive")
    experiments: dict[str, ArchivedExperiment] = {}
    for summary_file in _in_run_order(root):
        s = read_json(summary_file)
        exp = experiments.setdefault(
            s["experiment"], ArchivedExperiment(s["experiment"], s["client"]["kind"], list(s["swept"]))
        )
        exp.points[s["point"]] = summary_file.parent
    if not experiments:
        raise ConfigError(f"{source}: no point results (*/points/*/summary.json) in this run")
    return ArchivedRun(root, experiments)


def _in_run_order(root: Path) -> list[Path]:
    """The run's summary.json files in the order its manifest lists the points (then any others)."""
    found = sorted(root.glob("*/points/*/summary.json"))
    manifest = root / "manifest.json"
    listed = read_json(manifest).get("points", []) if manifest.is_file() else []
    ordered = [root / p["experiment"] / "points" / p["point"] / "summary.json" for p in listed]
    ordered = [f for f in ordered if f in set(found)]
    return ordered + [f for f in found if f not in set(ordered)]


def headline_table(tidy: pd.DataFrame, client: str, swept: list[str]) -> pd.DataFrame:
    """One row per point (and label, e.g. Redis command): swept parameters, then headline metrics."""
    data = tidy[tidy["source"] == "client"]
    wanted = HEADLINES.get(client, [])
    keep = pd.Series(False, index=data.index)
    for metric, stats in wanted:
        keep |= (data["metric"] == metric) & data["stat"].isin(stats)
    data = data[keep].assign(
        column=lambda d: d["metric"] + " " + d["stat"] + " (" + d["unit"].astype(str) + ")"
    )
    labels = [c for c in ("command", "k", "batch_size") if c in data.columns and data[c].notna().any()]
    index = ["point", *[f"param_{p}" for p in swept], *labels]
    table = data.pivot_table(index=index, columns="column", values="value", aggfunc="first", sort=True)
    order = [
        c
        for metric, stats in wanted
        for stat in stats
        for c in table.columns
        if c.startswith(f"{metric} {stat} (")
    ]
    table = table[order].reset_index()
    return table.rename(columns={f"param_{p}": p for p in swept})
