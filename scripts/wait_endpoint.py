"""wait_endpoint / wait_monitor: poll for endpoint.json and the readiness probe, with a deadline."""

from aibench.lifecycle import wait_ready
from aibench.snakemake_glue import script_logger, service_dir_of

log = script_logger(snakemake.log, "wait")
ready = wait_ready(
    service_dir_of(snakemake.input.handle), snakemake.params.timeout_s, snakemake.params.interval_s
)
log.info(
    "ready at %s:%s after %.3f s of waiting (%.3f s after the service started)",
    ready["host"],
    ready["port"],
    ready["waited_s"],
    ready["lag_after_start_s"],
)
