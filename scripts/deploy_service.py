"""deploy_service / deploy_monitor: start the service job, write handle.json (never secrets)."""

from pathlib import Path

from aibench.lifecycle import deploy
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "deploy")
settings = dict(snakemake.params.service)
handle = deploy(Path(snakemake.output.handle).parent, **settings)
log.info(
    "started %s for %s with launcher %s: pid/job %s, log %s",
    handle["kind"],
    handle["experiment"],
    handle["launcher"],
    handle.get("job_id", handle.get("pid")),
    handle["log"],
)
