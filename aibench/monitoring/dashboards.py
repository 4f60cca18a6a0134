"""The project's Grafana dashboards (monitoring/grafana/dashboards/*.json): loading, checks, queries.

Dashboards are validated against config/schemas/grafana-dashboard.schema.yaml plus what a schema
cannot say (unique panel ids and refIds, panels inside the 24-column grid). Their PromQL can be
taken out (:func:`panel_queries`), made concrete for one experiment (:func:`instantiate`) and asked of
any Prometheus, which is how tests/integration/test_dashboards.py checks them against real exporters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aibench.errors import ConfigError
from aibench.paths import PROJECT_ROOT
from aibench.recipes.validation import validate

DASHBOARDS_DIR = PROJECT_ROOT / "monitoring" / "grafana" / "dashboards"
#: uid of the Prometheus datasource the grafana kind provisions; every panel reads it
DATASOURCE_UID = "aibench-prometheus"
SCHEMA = "grafana-dashboard"
GRID_COLUMNS = 24

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
     "group_right", "inf", "nan", "atan2"}
)  # fmt: skip
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def check_dashboard(data: Any, source: str | Path) -> dict[str, Any]:
    """``data`` if it is a valid dashboard of the project; else a ConfigError naming file and field."""
    dashboard = validate(data, SCHEMA, source)
    ids = [panel["id"] for panel in dashboard["panels"]]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{source}: panel ids used twice: {duplicates}")
    for number, panel in enumerate(dashboard["panels"]):
        where = f"{source}: field 'panels[{number}]' ({panel['title']!r})"
        grid = panel["gridPos"]
        if grid["x"] + grid["w"] > GRID_COLUMNS:
            raise ConfigError(f"{where}: gridPos x + w = {grid['x'] + grid['w']} > {GRID_COLUMNS} columns")
        ref_ids = [target["refId"] for target in panel["targets"]]
        if len(set(ref_ids)) != len(ref_ids):
            raise ConfigError(f"{where}: refIds used twice: {ref_ids}")
    return dashboard


def load_dashboard(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError(f"{path}: not valid JSON ({where}): {exc.msg}") from None
    return check_dashboard(data, path)


def load_dashboards(directory: str | Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """Every dashboard of ``directory`` by file stem, validated; uids must differ."""
    dashboards = {path.stem: load_dashboard(path) for path in sorted(Path(directory).glob("*.json"))}
    if not dashboards:
        raise ConfigError(f"{directory}: no dashboards (*.json)")
    uids = [d["uid"] for d in dashboards.values()]
    if len(set(uids)) != len(uids):
        raise ConfigError(f"{directory}: dashboard uids used twice: {sorted(uids)}")
    return dashboards


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, in dashboard order."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and strings aside)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m.group(0) for m in _NAME.finditer(text) if m.group(0).lower() not in _KEYWORDS}


def instantiate(
    expr: str,
    experiment: str,
    *,
    rate_interval: str = "30s",
    interval: str = "5s",
    range_: str = "5m",
) -> str:
    """``expr`` as Grafana would send it for ``experiment`` (a name, or a regex: panels match with =~).

    Grafana's ``$__rate_interval``, ``$__interval`` and ``$__range`` become the given durations.
    Raises ValueError if a variable remains that Grafana would have had to fill in.
    """
    values = {
        "experiment": experiment,
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
