"""plot_sweep: the client kind's headline metrics against one swept parameter of one experiment."""

from aibench.plots import sweep_figure
from aibench.results.aggregate import tidy_table
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
# the client's metrics, and the server's own where the points were monitored (their metrics.csv)
table = tidy_table(snakemake.params.point_dirs)
experiment, param = snakemake.wildcards.experiment, snakemake.wildcards.param
sweep_figure(table, experiment, param, snakemake.params.swept, snakemake.output, snakemake.params.client)
log.info("wrote %s", ", ".join(snakemake.output))
