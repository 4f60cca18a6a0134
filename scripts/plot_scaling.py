"""plot_scaling: throughput and p99 latency against a scale (replicas) of one experiment's service sweep."""

from aibench.plots import scaling_figure
from aibench.results.aggregate import tidy_table
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
table = tidy_table(snakemake.params.point_dirs, resources=False)
scaling_figure(
    table,
    snakemake.wildcards.experiment,
    snakemake.params.scale,
    snakemake.params.swept,
    snakemake.output,
    snakemake.params.client,
)
log.info("wrote %s", ", ".join(snakemake.output))
