#!/usr/bin/env bash
# Install the Debian packages listed in the given files (default: envs/system-packages.txt), only
# those missing. Usage: envs/install-system.sh [LIST...]
# Idempotent; needs root (or sudo) only when something is missing. Daemons are not started:
# the workflow and the tests start their own private instances on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$here/system-packages.txt"
mapfile -t wanted < <(grep -hEv '^\s*(#|$)' "$@")
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps Debian's maintainer scripts from starting system-wide daemons; one that was
# already there (container images ship one) is kept as it is
if [ ! -e /usr/sbin/policy-rc.d ]; then
  $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
