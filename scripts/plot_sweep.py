"""plot_sweep: throughput and p99 latency against one swept parameter of one experiment."""

import pandas as pd

from aibench.plots import sweep_figure
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
table = pd.read_csv(snakemake.input.table)
sweep_figure(
    table,
    snakemake.wildcards.experiment,
    snakemake.wildcards.param,
    snakemake.params.swept,
    snakemake.output,
)
log.info("wrote %s", ", ".join(snakemake.output))
