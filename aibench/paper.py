"""Paper tables and figures from an archived run alone (raw results + manifest; no service starts).

`make paper RUN=<results dir or run .tar.gz>` runs paper/Snakefile, which reuses the run's own plot and
aggregation scripts on the archived point files and writes paper/tables/ and paper/figures/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aibench.archive import SUMMARY_GLOB, TOP, RunPoint, read_points, unpack
from aibench.clients import CLIENTS
from aibench.clients.presentation import NODE, SCALING, presentation_of
from aibench.errors import ConfigError
from aibench.results.aggregate import deployment_columns
from aibench.results.stats import current_stats
from aibench.rundir import DEPLOYMENT_SUMMARY_GLOB, PointDir


@dataclass
class ArchivedExperiment:
    name: str
    client: str
    swept: list[str]
    points: dict[str, Path] = field(default_factory=dict)  # [deployment/]point id -> its directory
    #: what its service sweep varied (the scaling figure's parameter among them)
    service_swept: set[str] = field(default_factory=set)

    @property
    def has_resources(self) -> bool:
        return all(PointDir(d).metrics.is_file() for d in self.points.values())


@dataclass
class ArchivedRun:
    root: Path
    experiments: dict[str, ArchivedExperiment]

    def point_dirs(self, experiment: str | None = None) -> list[str]:
        """Point directories in the run's own order (that of its summary.csv)."""
        names = [experiment] if experiment else list(self.experiments)
        return [str(d) for n in names for d in self.experiments[n].points.values()]

    def experiment_pattern(self) -> str:
        """A regex matching exactly one of the run's experiment names (a wildcard constraint)."""
        return alternatives(self.experiments)

    def parameter_pattern(self) -> str:
        """A regex matching exactly one of the parameters any experiment of the run sweeps."""
        return alternatives(dict.fromkeys(p for e in self.experiments.values() for p in e.swept))


def alternatives(names: Iterable[str]) -> str:
    """A regex matching exactly one of ``names``, each escaped (a name may hold '.'), or nothing at all."""
    escaped = [re.escape(name) for name in names]
    return "|".join(escaped) if escaped else "(?!)"


def open_run(source: str | Path, workdir: Path) -> ArchivedRun:
    """The run in ``source``: a results directory, or an archive unpacked into ``workdir``/run (reused if
    unpacked from this same archive before). Every name the paper's paths are built from is checked
    first (:func:`aibench.archive.read_points`)."""
    source = Path(source)
    if source.is_file():
        root, prefix = unpack(source, workdir, check=_check_paper_names), f"{TOP}/"
    elif source.is_dir():
        root, prefix = source, ""
    else:
        raise ConfigError(f"config field 'run': {source} is neither a results directory nor a run archive")
    experiments: dict[str, ArchivedExperiment] = {}
    for p in read_points(root, str(source), prefix):
        summary = PointDir(p.directory).summary.relative_to(root).as_posix()
        _check_paper_names(p, f"{source}: {prefix}{summary}")
        exp = experiments.setdefault(p.experiment, ArchivedExperiment(p.experiment, p.client, list(p.swept)))
        if p.client != exp.client:  # one experiment, one client kind: its figures and table are the kind's
            raise ConfigError(
                f"{source}: {prefix}{summary}: field 'client.kind': {p.client!r}, but other points of "
                f"experiment {p.experiment!r} have {exp.client!r}"
            )
        exp.points[p.point if p.deployment is None else f"{p.deployment}/{p.point}"] = p.directory
        exp.service_swept.update(p.service_swept)
    if not experiments:
        globs = f"{SUMMARY_GLOB}, {DEPLOYMENT_SUMMARY_GLOB}"
        raise ConfigError(f"{source}: no point results ({globs}) in this run")
    return ArchivedRun(root, experiments)


#: the paper's own outputs a name would collide with: tables/summary.csv and the figures of each experiment
RESERVED_EXPERIMENTS = {"summary"}
RESERVED_PARAMETERS = {
    "resources", SCALING, *(f for k in CLIENTS.names() for f in presentation_of(k).raw_figures)
}


def _check_paper_names(point: RunPoint, where: str) -> None:
    if point.experiment in RESERVED_EXPERIMENTS:
        raise ConfigError(
            f"{where}: field 'experiment': {point.experiment!r} would name the paper's table "
            f"tables/{point.experiment}.csv, the run's own tidy table"
        )
    clash = sorted(RESERVED_PARAMETERS.intersection(point.swept))
    if clash:
        raise ConfigError(
            f"{where}: field 'swept': {clash[0]!r} would name the figure "
            f"figures/{point.experiment}/{clash[0]}.pdf, which the paper draws for another purpose"
        )


def headline_table(tidy: pd.DataFrame, client: str, swept: list[str]) -> pd.DataFrame:
    """One row per point (and label, e.g. Redis command): swept parameters, then the client kind's
    headline metrics (its presentation's ``headlines``)."""
    data = current_stats(tidy[tidy["source"] == "client"])
    wanted = presentation_of(client).headlines
    keep = pd.Series(False, index=data.index)
    for headline in wanted:
        keep |= headline.rows(data)
    data = data[keep].assign(
        column=lambda d: d["metric"] + " " + d["stat"] + " (" + d["unit"].astype(str) + ")"
    )
    labels = [c for c in ("command", "k", "batch_size", NODE) if c in data.columns and data[c].notna().any()]
    index = [*deployment_columns(data.columns), "point", *[f"param_{p}" for p in swept], *labels]
    table = data.pivot_table(index=index, columns="column", values="value", aggfunc="first", sort=True)
    order = [
        c
        for headline in wanted
        for stat in headline.stats
        for c in table.columns
        if c.startswith(f"{headline.metric} {stat} (")
    ]
    table = table[order].reset_index()
    return table.rename(columns={f"param_{p}": p for p in swept})
