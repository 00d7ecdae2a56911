#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh machine
# (idempotent): Debian packages, the Synapse venv.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(curl)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
./scripts/setup-synapse.sh
