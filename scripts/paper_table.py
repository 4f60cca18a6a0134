"""paper_table: one experiment's headline metrics per point, as CSV and LaTeX (from archived points)."""

from aibench.files import atomic_open
from aibench.paper import headline_table
from aibench.results.aggregate import tidy_table
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "paper")
tidy = tidy_table(snakemake.params.point_dirs, resources=False)
table = headline_table(tidy, snakemake.params.client, snakemake.params.swept)
with atomic_open(snakemake.output.csv, "w") as handle:
    table.to_csv(handle, index=False)
with atomic_open(snakemake.output.tex, "w") as handle:
    handle.write(table.to_latex(index=False, float_format="%.4g", escape=True))
log.info("%s: %d rows", snakemake.wildcards.experiment, len(table))
