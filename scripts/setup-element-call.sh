#!/usr/bin/env bash
# Installs what tests/element_call.rs needs to run the real Element Call:
# the exact npm packages of tests/element_call/package-lock.json
# (@element-hq/element-call-embedded 0.26.1, matrix-js-sdk 43.0.0,
# matrix-widget-api 1.19.0, livekit-client 2.22.3, playwright-core, esbuild)
# into .cache/element-call, which git ignores. Element Call is AGPL: it is
# installed here at test time, never committed, and never served by Salon
# (only the test's own static server serves it). Idempotent: a second run
# with an unchanged lockfile does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
src=tests/element_call
dest=.cache/element-call
stamp="$dest/.installed"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dest/node_modules/@element-hq/element-call-embedded/dist" ]; then
  echo "Element Call (test) is installed in $dest"
  exit 0
fi
install_element_call() {
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}
step "Installing Element Call and its test host's npm packages into $dest" install_element_call
