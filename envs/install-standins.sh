#!/usr/bin/env bash
# Install the tests' Apptainer STAND-IN as `apptainer` on every node's PATH (/usr/local/bin), as a cluster
# admin installs Apptainer: SLURM job scripts start with `#!/bin/bash -l`, whose /etc/profile resets PATH,
# so a stand-in only on the test session's PATH would be invisible to service jobs on compute nodes.
#
#   envs/install-standins.sh           install or refresh (idempotent; needs root)
#   envs/install-standins.sh remove    remove what this script installed
#
# The stand-in (envs/standins/apptainer), its image builder (aibench/standin_images.py) and the image
# recipes (envs/images/) are copied to /usr/local/lib/aibench-apptainer-standin, so the command does not
# depend on which checkout installed it. A real `apptainer` already at /usr/local/bin/apptainer is never
# replaced. bubblewrap and mmdebstrap (Debian packages) are what it runs on.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
lib=/usr/local/lib/aibench-apptainer-standin
bin=/usr/local/bin/apptainer
marker="# AI Factory Bench: Apptainer STAND-IN (envs/install-standins.sh)"

if [ "${1:-}" = remove ]; then
  if [ -e "$bin" ] && grep -qxF "$marker" "$bin"; then rm -f "$bin"; fi
  rm -rf "$lib"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-standins.sh: must run as root" >&2; exit 1; }
if [ -e "$bin" ] && ! grep -qxF "$marker" "$bin"; then
  echo "install-standins.sh: $bin exists and is not the stand-in (a real Apptainer?): left as it is" >&2
  exit 0
fi
missing=()
for pkg in bubblewrap mmdebstrap; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
staging=$(mktemp -d "$lib.new.XXXXXX")
trap 'rm -rf "$staging"' EXIT
install -D -m 0755 "$here/envs/standins/apptainer" "$staging/envs/standins/apptainer"
install -D -m 0644 "$here/aibench/standin_images.py" "$staging/aibench/standin_images.py"
mkdir -p "$staging/envs/images"
cp "$here"/envs/images/* "$staging/envs/images/"
# the project files stand-in images carry (a recipe's `files`, e.g. envs/standins/ollama as /bin/ollama,
# aibench/llama_server.py as /app/llama-server): the builder reads them relative to its own root
python3 - "$here" <<'EOF' | while IFS= read -r f; do install -D -m 0755 "$here/$f" "$staging/$f"; done
import sys, tomllib
from pathlib import Path
sources = set()
for recipe in sorted(Path(sys.argv[1], "envs", "images").glob("*.toml")):
    sources.update(source for source, _ in tomllib.loads(recipe.read_text()).get("files", []))
print("\n".join(sorted(sources)))
EOF
chmod -R a+rX "$staging"
if [ -d "$lib" ] && diff -rq "$staging" "$lib" >/dev/null 2>&1; then
  :
else
  rm -rf "$lib.old"
  [ -d "$lib" ] && mv "$lib" "$lib.old"
  mv "$staging" "$lib"
  rm -rf "$lib.old"
fi
tmp=$(mktemp)
printf '#!/bin/sh\n%s\nexec /usr/bin/python3 %s/envs/standins/apptainer "$@"\n' "$marker" "$lib" >"$tmp"
chmod 0755 "$tmp"
cmp -s "$tmp" "$bin" 2>/dev/null || mv -f "$tmp" "$bin"
rm -f "$tmp"
echo "apptainer stand-in: $bin -> $lib ($(/usr/local/bin/apptainer --version))"
