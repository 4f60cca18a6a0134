"""scrape_metrics: the point's time window read back from Prometheus into metrics.csv."""

from aibench.monitoring.prometheus import scrape_point_files
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "scrape")
rows = scrape_point_files(
    snakemake.input.monitor,
    snakemake.input.summary,
    snakemake.output.metrics,
    snakemake.params.interval_s,
)
log.info("%d samples written to %s", rows, snakemake.output.metrics)
