"""A point's metrics.csv, written without pandas, reads back as pandas wrote it (the archived runs')."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aibench.monitoring import prometheus

ROWS = [
    {"series": "cpu_cores", "timestamp": 1796243826.097, "value": 0.25, "labels": ""},
    {"series": "server_kv_cache_usage", "timestamp": 1796243827.097, "value": float("nan"), "labels": ""},
    {"series": "server_ttft_seconds_bucket", "timestamp": 1796243827.097, "value": 3.0, "labels": "le=+Inf"},
    {"series": "rss_bytes", "timestamp": 1796243828.0, "value": 1.5e9, "labels": 'a=x,"y";b=z'},
    {"series": "gpu_power_w", "timestamp": 1796243829.5, "value": float("inf"), "labels": "gpu=0"},
]


def test_metrics_csv_is_written_as_pandas_writes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = {"experiment": "e", "point": "p", "service": {"kind": "redis"}, "window": {}}
    rows = [{"experiment": "e", "point": "p", **row} for row in ROWS]
    monkeypatch.setattr(prometheus, "scrape_point", lambda *args: rows)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "ready.json").write_text("{}")
    out = tmp_path / "metrics.csv"
    assert prometheus.scrape_point_files(str(tmp_path / "ready.json"), str(tmp_path / "summary.json"),
                                         str(out), 1.0) == len(rows)  # fmt: skip
    columns = ["experiment", "point", "series", "timestamp", "value", "labels"]
    assert out.read_text() == pd.DataFrame(rows, columns=columns).to_csv(index=False)
    back = pd.read_csv(out, keep_default_na=True)
    assert back["value"].isna().tolist() == [False, True, False, False, False]
    assert back["labels"].fillna("").tolist() == [r["labels"] for r in ROWS]
