"""Workflow tests use the fixtures of tests/conftest.py (workspace, make_config, snakemake)."""
