"""`snakemake -n` plans the workflow for every shape of monitoring (off, on, with Grafana) and starts
nothing: each rule's parameters are evaluated only for the jobs that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import snakemake

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize(
    ("monitoring", "rules"),
    [
        ({"enabled": False}, {"deploy_service"}),
        ({"enabled": True}, {"deploy_service", "deploy_monitor"}),
        ({"enabled": True, "grafana": True}, {"deploy_service", "deploy_monitor", "deploy_grafana"}),
    ],
    ids=["off", "on", "grafana"],
)
def test_dry_run_plans_every_monitoring_shape(
    workspace: Path, make_config: object, monitoring: dict, rules: set[str]
) -> None:
    config = make_config(  # type: ignore[operator]
        {"service": "redis", "client": "redis-benchmark", "sweep": {"clients": [1, 2]}}
    )
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "monitoring": monitoring}))
    done = snakemake(config, "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    for rule in rules:
        assert f"rule {rule}:" in output, rule
    if not monitoring["enabled"]:
        assert "rule deploy_monitor:" not in output
    assert not (workspace / "results").exists()
