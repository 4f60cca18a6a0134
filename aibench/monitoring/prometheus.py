"""Reading a point's time window back from Prometheus (HTTP API, query_range)."""

from __future__ import annotations

from typing import Any

import requests

from aibench import probes


class PrometheusClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.base_url}{path}", params=params, timeout=self.timeout)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(
                f"Prometheus {path} {params.get('query')!r}: {body.get('error', response.text)}"
            )
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        return self._get("/api/v1/query", **params)["result"]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", query=promql, start=start, end=end, step=step)["result"]

    def target_states(self, experiment: str, deployment: str | list[str] | None = None) -> str:
        """What Prometheus knows of the experiment's targets: exporter, health, last error."""
        try:
            targets = self._get("/api/v1/targets", state="active")["activeTargets"]
        except (requests.RequestException, RuntimeError, ValueError) as exc:
            return f"targets unknown: {exc}"
        ids = deployment if isinstance(deployment, list) else [deployment] if deployment else None
        mine = [t for t in targets if t["labels"].get("experiment") == experiment
                and (ids is None or t["labels"].get("deployment") in ids)]  # fmt: skip
        if not mine:
            return "Prometheus has discovered none of them yet"
        return "; ".join(f"{t['labels'].get('exporter', t['scrapeUrl'])}: {t['health']}"
                         + (f" ({t['lastError']})" if t.get("lastError") else "") for t in mine)  # fmt: skip

    def wait_scraped_past(self, selector: str, until: float, deadline_s: float, interval_s: float) -> None:
        """Wait until every target matching ``selector`` has a sample at or after ``until``.

        Returns at once when no target matches (nothing to wait for).
        """

        def check() -> None:
            result = self.query(f"min(timestamp(up{{{selector}}}))")
            if result and float(result[0]["value"][1]) < until:
                raise probes.NotReady(f"last scrape at {result[0]['value'][1]}, window ends {until:.3f}")

        probes.poll(check, deadline_s, interval_s)


def scrape_window(
    client: PrometheusClient,
    queries: dict[str, str],
    selector: str,
    start: float,
    end: float,
    step: float,
) -> list[dict[str, Any]]:
    """Rows (series, timestamp, value, labels) of every query over [start, end].

    Evaluation times are aligned on ``end`` so a window shorter than one step still gets one, and
    run one step past it: the scrape that closes the window (the caller waits for it) then counts,
    so a rate() over a short window always has two samples.
    """
    start = end - int((end - start) / step) * step
    end += step
    rows: list[dict[str, Any]] = []
    for series, template in queries.items():
        promql = template.format(sel=selector)
        for result in client.query_range(promql, start, end, step):
            labels = ";".join(f"{k}={v}" for k, v in sorted(result["metric"].items()))
            for timestamp, value in result["values"]:
                rows.append(
                    {
                        "series": series,
                        "timestamp": float(timestamp),
                        "value": float(value),
                        "labels": labels,
                    }
                )
    return rows


def selector_of(experiment: str, deployment: str | list[str] | None = None) -> str:
    """Label selector of an experiment's series, of one deployment of it (or of several: the replicas
    serving one load) when given."""
    if isinstance(deployment, list):
        return f'experiment="{experiment}",deployment=~"{"|".join(deployment)}"'
    return f'experiment="{experiment}"' + (f',deployment="{deployment}"' if deployment else "")


def summary_deployments(summary: dict[str, Any]) -> str | list[str] | None:
    """The service deployment(s) a point's summary ran against: its replicas' ids, else its one."""
    replicas = summary["service"].get("replicas")
    return [r["deployment"] for r in replicas] if replicas else summary["service"].get("deployment")


def wait_targets_up(
    prometheus: dict[str, Any],
    experiment: str,
    count: int,
    deadline_s: float,
    deployment: str | list[str] | None = None,
) -> float:
    """Wait until Prometheus has scraped ``count`` targets of ``experiment`` (``deployment``) successfully."""
    client = PrometheusClient(f"http://{prometheus['host']}:{prometheus['port']}")

    def check() -> None:
        result = client.query(f"sum(up{{{selector_of(experiment, deployment)}}})")
        up = float(result[0]["value"][1]) if result else 0.0
        if up < count:
            raise probes.NotReady(f"{up:g} of {count} exporters of {experiment} scraped so far "
                                  f"({client.target_states(experiment, deployment)})")  # fmt: skip

    return probes.poll(check, deadline_s, 0.1)


def scrape_point(
    prometheus: dict[str, Any],
    summary: dict[str, Any],
    queries: dict[str, str],
    interval_s: float,
) -> list[dict[str, Any]]:
    """Every resource series of the point's service over the point's window.

    Waits (polling, with a deadline) until Prometheus has scraped past the window's end.
    """
    client = PrometheusClient(f"http://{prometheus['host']}:{prometheus['port']}")
    selector = selector_of(summary["experiment"], summary_deployments(summary))
    window = summary["window"]
    client.wait_scraped_past(selector, window["end"], deadline_s=10 * interval_s + 10, interval_s=0.2)
    queries = {"targets_up": "sum(up{{{sel}}})", **queries}
    rows = scrape_window(client, queries, selector, window["start"], window["end"], interval_s)
    return [{"experiment": summary["experiment"], "point": summary["point"], **r} for r in rows]


def scrape_point_files(ready_json: str, summary_json: str, output_csv: str, interval_s: float) -> int:
    """scrape_point from the files of a run; writes ``output_csv`` atomically, returns the row count.
    The csv module, not pandas (whose import alone takes seconds of CPU): the scrape runs beside the
    next load. Written as pandas writes it (NaN as an empty field), so pandas.read_csv reads it back."""
    import csv
    import math

    from aibench.files import atomic_open, read_json
    from aibench.monitoring.server_series import check_queries
    from aibench.services import SERVICES

    summary = read_json(summary_json)
    kind = SERVICES.create(summary["service"]["kind"])
    queries = {**kind.resource_queries(), **check_queries(kind.server_queries())}
    rows = scrape_point(read_json(ready_json), summary, queries, interval_s)
    columns = ["experiment", "point", "series", "timestamp", "value", "labels"]
    with atomic_open(output_csv, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            values = (row.get(column) for column in columns)
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in values])
    return len(rows)
