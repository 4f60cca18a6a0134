"""run_client: one point's load against the deployed service, written in the common schema."""

from pathlib import Path

from aibench.clients.runner import keep_failed_attempt, run_point_against
from aibench.snakemake_glue import script_logger, service_dir_of

log = script_logger(snakemake.log, "client")
summary = run_point_against(
    service_dir_of(snakemake.input.ready),
    Path(snakemake.output.summary).parent,
    monitor_ready=snakemake.input.monitor[0] if snakemake.input.monitor else None,
    **snakemake.params.point,
)
window = summary["window"]
log.info(
    "%s %s: %s in %.2f s", summary["experiment"], summary["point"], summary["status"], window["duration_s"]
)
if summary["status"] != "ok":
    kept = keep_failed_attempt(Path(snakemake.output.summary).parent)
    log.error("point failed: %s (its summary and raw records are kept in %s)", summary["error"], kept)
    raise SystemExit(1)
