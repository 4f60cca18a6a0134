"""Formula ids: how each number was computed, as docs/metrics.md defines them.

A metric record's ``formula`` is a stable id (``llm.ttft``), then the parameters the number depends on,
each after a ``;`` (``llm.goodput;slo=ttft<=200ms,tpot<=50ms``). Two numbers with different ids are not
comparable; the id alone is what docs/metrics.md lists (tests/unit/test_metric_docs.py keeps the two in step).
"""

from __future__ import annotations

#: every load generator of the project's own counts these alike (docs/metrics.md, "Offered load")
REQUESTS = "load.requests"
ERROR_RATE = "load.error_rate"
QUEUE_DELAY = "load.queue_delay"
OFFERED_RATE = "load.offered_rate"
ACHIEVED_RATE = "load.achieved_rate"


def formula(formula_id: str, **params: object) -> str:
    """``formula_id`` with its parameters, in the order given: ``id;name=value;...``."""
    return ";".join([formula_id, *(f"{name}={value}" for name, value in params.items())])


def formula_id(text: str) -> str:
    """The id of a formula (what precedes its first ``;``)."""
    return text.split(";", 1)[0]


def prometheus_window(series: str) -> str:
    """The formula of a Prometheus row of the tidy table: a statistic of ``series`` over the point's
    window."""
    return formula("prometheus.window", series=series)
#: a point loaded from several client nodes (docs/metrics.md, "Load from several client nodes")
CLIENT_NODES = "load.client_nodes"
CLOCK_OFFSET = "load.clock_offset_max"
