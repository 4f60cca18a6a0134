"""How a client kind's results are shown: the sweep figure's panels and trade-off panel, the paper's
headline table, and the throughput the efficiency rows divide.

Each client kind declares its own ``presentation`` (aibench.clients.base.ClientKind); aibench.plots,
aibench.paper and aibench.results.efficiency read it from the kind, so a new kind brings its
presentation with its module. Metric and stat names are those of docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


#: the scaling figure's name (figures/<experiment>/scaling.*), drawn where an experiment's service sweep
#: varies one of SCALES: how many service jobs serve one load
SCALING, SCALES = "scaling", ("replicas",)


def scaling_parameter(service_swept: Iterable[str]) -> str | None:
    """The parameter an experiment's scaling figure is drawn against (its service sweep's), or None."""
    return next((name for name in SCALES if name in service_swept), None)


@dataclass(frozen=True)
class Stats:
    """Some statistics of one metric, as the tidy table names them (its ``metric`` and ``stat`` columns)."""

    metric: str
    stats: tuple[str, ...]

    def rows(self, table: pd.DataFrame) -> pd.Series:
        """Which rows of ``table`` hold these statistics (a boolean mask)."""
        return (table["metric"] == self.metric) & table["stat"].isin(self.stats)


#: the label of a number one client node measured (a tool without per-request records, loaded from
#: several nodes: aibench.clients.redis_benchmark), and its value on the nodes' sum
NODE, SUMMED = "node", "sum"


def whole_point(table: pd.DataFrame) -> pd.Series:
    """Which rows of ``table`` describe the whole point: every row but one client node's own number
    (a sum over nodes does). What reduces a point to one value reads only these: per-node percentiles
    are never averaged."""
    if NODE not in table.columns:
        return table["value"].notna() | table["value"].isna()  # every row
    node = table[NODE]
    return node.isna() | (node.astype(str) == SUMMED)


@dataclass(frozen=True)
class Panel(Stats):
    """A panel of the sweep figure: ``stats`` of ``metric`` (and of the metrics in ``also``) against
    the swept parameter, from rows of ``source`` (``client``: the load generator's; ``server``: the
    server's own /metrics, aibench.monitoring.server_metrics, drawn in the figure's second row)."""

    title: str
    source: str = "client"
    also: tuple[str, ...] = ()

    def rows(self, table: pd.DataFrame) -> pd.Series:
        return (
            table["metric"].isin((self.metric, *self.also))
            & table["stat"].isin(self.stats)
            & (table["source"] == self.source)
        )


@dataclass(frozen=True)
class Tradeoff:
    """The sweep figure's last panel: each (metric, stat) of ``series`` against the kind's throughput
    (mean), a marker per point annotated with the swept value (e.g. recall against QPS)."""

    series: tuple[tuple[str, str], ...]
    ylabel: str
    title: str


@dataclass(frozen=True)
class Presentation:
    """What a client kind shows of its metrics."""

    #: the headline throughput (stat mean): the efficiency rows' numerator, the trade-off panel's x axis
    throughput: str
    #: the sweep figure's panels, in order
    panels: tuple[Panel, ...]
    #: the columns of the paper's table of an experiment, in order
    headlines: tuple[Stats, ...]
    tradeoff: Tradeoff | None = None
    #: figures drawn from the points' raw per-request records, each a rule of the main and paper
    #: workflows (today: "ttft_cdf", the TTFT distribution of an LLM load)
    raw_figures: tuple[str, ...] = ()

    def metrics(self) -> set[str]:
        """Every client metric name this presentation reads (each must be one the kind emits)."""
        panels = [p for p in self.panels if p.source == "client"]
        names = {self.throughput, *(p.metric for p in panels), *(h.metric for h in self.headlines)}
        names |= {m for p in panels for m in p.also}
        return names | {metric for metric, _ in (self.tradeoff.series if self.tradeoff else ())}

    def server_metrics(self) -> set[str]:
        """Every server-side metric name the panels read (aibench.monitoring.server_metrics names them)."""
        return {m for p in self.panels if p.source == "server" for m in (p.metric, *p.also)}


def presentation_of(kind: str) -> Presentation:
    """The presentation of client kind ``kind`` (KeyError naming the known kinds when there is none)."""
    from aibench.clients import CLIENTS

    return CLIENTS.get(kind).presentation
