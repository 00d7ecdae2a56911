#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit tests, the speech engine on real
# Whisper weights, the SFU with real WebRTC peers, and the end-to-end journeys
# on a real Synapse), then the call page's tests in headless Chromium.
# Installs what they need first (idempotent). One build serves all the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export SALON_PY_VENV=${SALON_PY_VENV:-$PWD/.venv/livekit}
export SALON_SYNAPSE_VENV=${SALON_SYNAPSE_VENV:-$PWD/.venv/synapse}
# setup.sh built LiveKit server: the cluster tests must run, not skip.
export SALON_REQUIRE_LIVEKIT=${SALON_REQUIRE_LIVEKIT:-1}
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
(cd web && node --test tests/unit.test.mjs tests/smoke.mjs) || status=$?
exit $status
