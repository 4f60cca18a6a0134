"""plot_sweep: the client kind's headline metrics against one swept parameter of one experiment."""

import pandas as pd

from aibench.plots import sweep_figure
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "plot")
table = pd.read_csv(snakemake.input.table)
experiment, param = snakemake.wildcards.experiment, snakemake.wildcards.param
sweep_figure(table, experiment, param, snakemake.params.swept, snakemake.output, snakemake.params.client)
log.info("wrote %s", ", ".join(snakemake.output))
