"""write_overview: an experiment's overview page for the report (aibench.results.overview)."""

from pathlib import Path

from aibench.files import write_text
from aibench.results.overview import overview_html
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "overview")
results = Path(snakemake.input.manifest).parent  # the run's manifest.json is at its root
write_text(snakemake.output.html, overview_html(results, snakemake.wildcards.experiment))
log.info("wrote %s", snakemake.output.html)
