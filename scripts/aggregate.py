"""aggregate: every point's summary (and Prometheus window) into results/summary.csv."""

from aibench.results.aggregate import write_summary_csv
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "aggregate")
table = write_summary_csv(snakemake.params.point_dirs, snakemake.output.table)
log.info("%d rows from %d points", len(table), len(snakemake.params.point_dirs))
