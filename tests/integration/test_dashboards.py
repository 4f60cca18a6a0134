"""The Grafana dashboards (monitoring/grafana/dashboards) against a real Prometheus and real exporters.

Grafana itself cannot run here, but what its panels would ask can: a real Prometheus (kind prometheus,
1 s scrapes) watches a real Redis and a real MariaDB deployed through aibench.lifecycle with their
exporters, and every query of every panel of every dashboard is evaluated for each experiment (and for
"All"). Every query must be valid PromQL; a query must return data whenever every metric it names is
in Prometheus for that experiment (so what must have data follows the exporters that run here: GPU,
vLLM and cAdvisor panels are only checked for errors), and must return nothing for an experiment that
has none of its metrics (the experiment filter works).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from aibench import lifecycle
from aibench.contracts import DeploymentSpec, Endpoint
from aibench.errors import ConfigError
from aibench.files import read_json
from aibench.launchers.local import group_members
from aibench.monitoring.dashboards import (
    check_dashboard,
    instantiate,
    load_dashboard,
    load_dashboards,
    metric_names,
    panel_queries,
)
from aibench.monitoring.prometheus import PrometheusClient, wait_targets_up
from aibench.probes import NotReady, poll
from aibench.recipes import load_service
from tests.conftest import ROOT

EXPERIMENTS = {"dash-redis": "redis", "dash-mysql": "mysql"}
DASHBOARDS = {"overview", "llm", "redis", "mysql", "chroma", "gpu"}
#: the metrics the dashboards may use, by the exporter that produces them (names as documented by
#: each exporter); a misspelt name would otherwise look like a metric of an exporter not running here
EXPORTED = {
    "prometheus": {"up", "scrape_duration_seconds"},
    "process": {"namedprocess_namegroup_cpu_seconds_total", "namedprocess_namegroup_memory_bytes",
                "namedprocess_namegroup_num_procs"},
    "node": {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
             "node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_load1"},
    "redis": {"redis_commands_processed_total", "redis_connected_clients", "redis_memory_used_bytes",
              "redis_keyspace_hits_total", "redis_keyspace_misses_total"},
    "mysqld": {"mysql_global_status_queries", "mysql_global_status_threads_connected",
               "mysql_global_status_innodb_buffer_pool_reads", "mysql_up"},
    "cadvisor": {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"},
    "gpu": {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_GPU_TEMP"},
    "vllm": {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
             "vllm:time_to_first_token_seconds_bucket", "vllm:generation_tokens_total"},
}  # fmt: skip


def _used_metrics() -> set[str]:
    return {n for d in load_dashboards().values() for _, expr in panel_queries(d) for n in metric_names(expr)}


def _params(kind: str) -> dict[str, Any]:
    return load_service(ROOT / "recipes" / "services" / f"{kind}.yaml").params


def _wait_samples(client: PrometheusClient, experiments: list[str], samples: int, deadline_s: float) -> None:
    """Until every target of ``experiments`` has ``samples`` scrapes in the last 30 s (rate() needs two)."""
    selector = "|".join(experiments)

    def check() -> None:
        result = client.query(f'min(count_over_time(up{{experiment=~"{selector}"}}[30s]))')
        have = float(result[0]["value"][1]) if result else 0.0
        if have < samples:
            raise NotReady(f"{have:g} of {samples} scrapes per target so far")

    poll(check, deadline_s, 0.2)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    """A real Prometheus scraping the exporters of a real Redis and a real MariaDB."""
    root = tmp_path_factory.mktemp("dashboards")
    monitoring, targets = root / "monitoring", root / "monitoring" / "targets"
    started: list[Path] = []
    try:
        prometheus = {"scrape_interval_s": 1, "targets_dir": str(targets)}
        lifecycle.deploy(monitoring, DeploymentSpec("monitoring", "prometheus", prometheus))
        started.append(monitoring)
        ready = lifecycle.wait_ready(monitoring, 60, 0.1)
        for experiment, kind in EXPERIMENTS.items():
            service_dir = root / experiment / "service"
            spec = DeploymentSpec(experiment, kind, _params(kind), targets_dir=str(targets))
            lifecycle.deploy(service_dir, spec)
            started.append(service_dir)
        for service_dir in started[1:]:
            lifecycle.wait_ready(service_dir, 90, 0.1)
        for experiment in EXPERIMENTS:
            exporters = Endpoint.read(root / experiment / "service" / "endpoint.json").scraped_exporters
            assert exporters, f"{experiment}: no exporter started"
            wait_targets_up(ready, experiment, len(exporters), 60)
        client = PrometheusClient(f"http://{ready['host']}:{ready['port']}")
        _wait_samples(client, list(EXPERIMENTS), samples=4, deadline_s=60)
        yield client
    finally:
        processes = [p for service_dir in started for p in _processes(service_dir)]
        for service_dir in reversed(started):
            lifecycle.stop(service_dir)
        _, alive = psutil.wait_procs(processes, timeout=15)
        left = [f"{p.pid} {' '.join(p.cmdline())}" for p in alive]
        for proc in alive:  # clean up, then fail: nothing this module started may outlive it
            proc.kill()
        assert not left, f"processes left running: {left}"


def _processes(service_dir: Path) -> list[psutil.Process]:
    """The service job of ``service_dir`` and everything it started (its process group and children)."""
    handle = read_json(service_dir / "handle.json")
    processes = {p.pid: p for p in group_members(handle["pgid"])}
    try:
        job = psutil.Process(handle["pid"])
        processes.update({p.pid: p for p in [job, *job.children(recursive=True)]})
    except psutil.NoSuchProcess:
        pass
    return list(processes.values())


def _metric_names_of(client: PrometheusClient, experiment: str) -> set[str]:
    response = requests.get(
        f"{client.base_url}/api/v1/label/__name__/values",
        params={"match[]": f'{{experiment=~"{experiment}"}}'},
        timeout=10,
    )
    response.raise_for_status()
    return set(response.json()["data"])


def test_every_dashboard_is_valid() -> None:
    dashboards = load_dashboards()
    assert set(dashboards) == DASHBOARDS
    for name, dashboard in dashboards.items():
        queries = panel_queries(dashboard)
        assert len(queries) >= len(dashboard["panels"]) >= 4, name
        for title, expr in queries:
            assert metric_names(expr), f"{name}: panel {title!r} selects no metric: {expr}"
            assert "$" not in instantiate(expr, "x")
    unknown = _used_metrics() - set().union(*EXPORTED.values())
    assert not unknown, f"metrics no exporter of the project produces: {sorted(unknown)}"


def _broken(tmp_path: Path, change: Any) -> Path:
    dashboard = json.loads((ROOT / "monitoring" / "grafana" / "dashboards" / "redis.json").read_text())
    change(dashboard)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(dashboard))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["panels"][2]["datasource"].update(uid="other"), "field 'panels[2].datasource.uid'"),
        (lambda d: d["panels"][1]["targets"][0].update(expr="sum(up)"), "field 'panels[1].targets[0].expr'"),
        (lambda d: d["panels"][3].update(type="graph"), "field 'panels[3].type'"),
        (lambda d: d.update(schemaVersion=16), "field 'schemaVersion'"),
        (lambda d: d["templating"].update(list=[]), "field 'templating.list'"),
        (lambda d: d["panels"][1].update(id=d["panels"][0]["id"]), "panel ids used twice"),
        (lambda d: d["panels"][0]["gridPos"].update(x=20, w=6), "gridPos x + w = 26"),
    ],
)
def test_broken_dashboards_are_rejected(tmp_path: Path, change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        load_dashboard(_broken(tmp_path, change))


def test_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"uid": "aibench-x",\n "title": }')
    with pytest.raises(ConfigError, match="not valid JSON \\(line 2"):
        load_dashboard(path)
    with pytest.raises(ConfigError, match="expected a mapping"):
        check_dashboard([], "list.json")


def test_metric_names_and_instantiate() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (experiment, le) (rate(vllm:ttft_bucket{experiment=~"$experiment",'
        ' le!="+Inf"}[$__rate_interval]))) * 1e3 / on(node) group_left max(node_load1 offset 5m)'
        " and bool up"
    )
    assert metric_names(expr) == {"vllm:ttft_bucket", "node_load1", "up"}
    concrete = instantiate(expr, "redis-a", rate_interval="4s")
    assert 'experiment=~"redis-a"' in concrete and "[4s]" in concrete
    assert instantiate("increase(x[$__range]) + y[${__interval}]", "e") == "increase(x[5m]) + y[5s]"
    with pytest.raises(ValueError, match=r"\$__interval_ms"):
        instantiate("x * $__interval_ms", "e")


def _evaluate(client: PrometheusClient, experiment: str, present: set[str]) -> dict[str, list[str]]:
    """Every panel query for ``experiment``: errors, empty results it must not have, and counts."""
    found: dict[str, list[str]] = {"error": [], "empty": [], "leaked": [], "with_data": [], "skipped": []}
    for name, dashboard in load_dashboards().items():
        for title, expr in panel_queries(dashboard):
            where = f"{name}.json / {title}: {expr}"
            try:
                result = client.query(instantiate(expr, experiment))
            except RuntimeError as exc:
                found["error"].append(f"{where}: {exc}")
                continue
            needed = metric_names(expr)
            if needed <= present:
                found["empty" if not result else "with_data"].append(where)
            elif not needed & present:
                found["skipped"].append(where)
                if result:  # none of its metrics belong to this experiment: the filter must hide others'
                    found["leaked"].append(f"{where}: {result[:2]}")
            else:
                found["skipped"].append(where)
    return found


@pytest.mark.parametrize("experiment", [*EXPERIMENTS, "dash-.*"])
def test_every_panel_query_against_real_prometheus(prometheus: PrometheusClient, experiment: str) -> None:
    present = _metric_names_of(prometheus, experiment)
    assert {"up", "namedprocess_namegroup_cpu_seconds_total"} <= present  # the exporters were scraped
    if experiment != "dash-mysql":
        assert {"redis_commands_processed_total", "redis_keyspace_hits_total"} <= present
    # an exporter that runs here has every metric the dashboards take from it (no misspelt names)
    for exporter, names in EXPORTED.items():
        if names & present:
            missing = (names & _used_metrics()) - present
            assert not missing, f"{exporter} exporter runs, yet {sorted(missing)} were not scraped"
    found = _evaluate(prometheus, experiment, present)
    assert not found["error"], "queries Prometheus rejects:\n" + "\n".join(found["error"])
    empty = "\n".join(found["empty"])
    assert not empty, f"queries without data although their metrics exist:\n{empty}"
    assert not found["leaked"], "queries with another experiment's data:\n" + "\n".join(found["leaked"])
    # every dashboard has panels fed by what runs here (process exporter at least), Redis's many more
    with_data = {where.split(".json")[0] for where in found["with_data"]}
    assert with_data == DASHBOARDS, f"dashboards with no panel checked for data: {DASHBOARDS - with_data}"
    assert len(found["with_data"]) >= (30 if experiment != "dash-mysql" else 15)
