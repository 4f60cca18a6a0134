#!/bin/sh
# Builds the root filesystems of the Apptainer stand-in's images (envs/standins/apptainer), or finds them
# cached: one line per image ("cached" or "built in N s") and a total; build output goes to
# $AIBENCH_IMAGE_CACHE/logs (default /var/cache/aibench/images/logs). Idempotent; needs root (mmdebstrap,
# bubblewrap: both installed with apt-get when missing).
#
#   envs/build-images.sh [--all]          every image with a recipe in envs/images (the default)
#   envs/build-images.sh REF...           e.g. docker://redis:7-alpine
#   envs/build-images.sh envs/aibench.def a def file, like `apptainer build envs/aibench.sif envs/aibench.def`
#
# See docs/images.md for what each stand-in is and how it differs from the real image.
set -eu
cd "$(dirname "$0")/.."
for python in python3 /usr/bin/python3; do
    if command -v "$python" >/dev/null 2>&1 && "$python" -c 'import tomllib' 2>/dev/null; then
        exec "$python" aibench/standin_images.py "$@"
    fi
done
echo "build-images.sh: needs Python >= 3.11 (python3)" >&2
exit 1
