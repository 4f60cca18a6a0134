"""wait_endpoint / wait_monitor / wait_grafana: endpoint.json, then the readiness probe, in time."""

from aibench.login_rules import wait_rule

wait_rule(snakemake.input, snakemake.params, snakemake.log)
