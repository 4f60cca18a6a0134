"""stop_service / stop_monitor: stop the service job after its last point; keep its log."""

from aibench.lifecycle import stop
from aibench.snakemake_glue import script_logger, service_dir_of

log = script_logger(snakemake.log, "stop")
stopped = stop(service_dir_of(snakemake.input.handle))
log.info("stopped %s (%s)", stopped["handle"]["kind"], stopped["how"])
