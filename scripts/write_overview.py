"""write_overview: an experiment's overview page for the report (aibench.results.overview)."""

from aibench.files import write_text
from aibench.results.overview import overview_html
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "overview")
write_text(snakemake.output.html, overview_html(snakemake.params.results, snakemake.wildcards.experiment))
log.info("wrote %s", snakemake.output.html)
