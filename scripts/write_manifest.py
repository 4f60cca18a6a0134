"""manifest: the run's provenance (results/manifest.json), once every deployment is stopped."""

from pathlib import Path

from aibench.files import write_json
from aibench.provenance import build_manifest
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "manifest")
results = Path(snakemake.output.manifest).parent
inputs = [Path(f) for f in snakemake.params.inputs]
points = [Path(d) for d in snakemake.params.point_dirs]
manifest = build_manifest(results, inputs, dict(snakemake.params.config), points)
write_json(snakemake.output.manifest, manifest)
log.info("manifest: commit %s, %d services, %d points", manifest["git"]["commit"],
         len(manifest["services"]), len(manifest["points"]))  # fmt: skip
