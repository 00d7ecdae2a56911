#!/usr/bin/env bash
# Runs every test: unit tests, and the end-to-end journeys on a real Synapse.
# Installs what they need first (idempotent). One build serves all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --no-fail-fast "$@"
