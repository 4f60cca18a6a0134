"""prepare_client: the client kind's once-per-deployment step (e.g. sysbench prepare)."""

from aibench.clients.runner import prepare_against
from aibench.files import write_json
from aibench.rundir import service_of
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "prepare")
p = snakemake.params
prepared = prepare_against(service_of(snakemake.input.ready), p.client, dict(p.params), p.timeout_s)
write_json(snakemake.output.prepared, prepared)
log.info(
    "%s prepare: %s in %.2f s",
    p.client,
    "done" if prepared["prepared"] else "nothing to do",
    prepared["duration_s"],
)
