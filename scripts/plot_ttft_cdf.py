"""plot_ttft_cdf: the TTFT distribution of every point of an LLM experiment, from raw records."""

from aibench.plots import ttft_cdf_figure
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
ttft_cdf_figure(snakemake.params.points, snakemake.wildcards.experiment, snakemake.output)
log.info("wrote %s", ", ".join(snakemake.output))
