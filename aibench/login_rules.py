"""The rules that talk to SLURM and start services: run on the login node, outside any container.

deploy_service, wait_endpoint and stop_service (and their monitoring and Grafana variants) call
sbatch/squeue/scancel, which the rule image does not hold. They are local rules with `container: None`
whose scripts (scripts/deploy_service.py, wait_endpoint.py, stop_service.py) Snakemake runs with its
own interpreter (snakemake/script/__init__.py, PythonScript.execute_script: ``sys.executable`` when the
rule has no container), on the host it runs on. Each function takes the rule's own named input,
output, params and log.
"""

from __future__ import annotations

from typing import Any

from aibench.contracts import DeploymentSpec
from aibench.lifecycle import deploy, stop, wait_ready
from aibench.rundir import service_of
from aibench.snakemake_glue import script_logger


def deploy_rule(output: Any, params: Any, log: Any) -> None:
    """deploy_service / deploy_monitor / deploy_grafana: start the service job, write its handle.

    ``params.service`` is a DeploymentSpec as JSON (rules/common.smk: Snakemake compares plain values
    for its params rerun trigger, so a changed recipe still redeploys)."""
    logger = script_logger(log, "deploy")
    spec = DeploymentSpec.from_json(params.service, f"params.service of the rule writing {output.handle}")
    handle = deploy(service_of(output.handle), spec)
    logger.info(
        "started %s for %s with launcher %s: pid/job %s, log %s",
        handle.kind,
        handle.experiment,
        handle.launcher,
        handle.job.ident,
        handle.job.log,
    )


def wait_rule(input: Any, params: Any, log: Any) -> None:
    """wait_endpoint / wait_monitor / wait_grafana: endpoint.json, then the readiness probe, in time."""
    logger = script_logger(log, "wait")
    ready = wait_ready(service_of(input.handle), params.timeout_s, params.interval_s)
    logger.info(
        "ready at %s:%s after %.3f s of waiting (%.3f s after the service started)",
        ready["host"],
        ready["port"],
        ready["waited_s"],
        ready["lag_after_start_s"],
    )


def stop_rule(input: Any, log: Any) -> None:
    """stop_service / stop_monitor / stop_grafana: stop the job after its last point; keep its log."""
    logger = script_logger(log, "stop")
    stopped = stop(service_of(input.handle))
    logger.info("stopped %s (%s)", stopped["handle"]["kind"], stopped["how"])
