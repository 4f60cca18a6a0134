"""plot_resources: resource use over each point's window, from the points' Prometheus series."""

from aibench.plots import resources_figure
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
resources_figure(snakemake.params.points, snakemake.wildcards.experiment, snakemake.output)
log.info("wrote %s", ", ".join(snakemake.output))
