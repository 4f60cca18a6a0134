"""AI Factory Bench: benchmark AI-factory services with Snakemake on HPC and locally."""

__version__ = "0.1.0"

#: Version of the results schema (summary.json, summary.csv, raw files); see docs/results-schema.md.
RESULTS_SCHEMA_VERSION = "2.1"
