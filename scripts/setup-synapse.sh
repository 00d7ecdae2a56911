#!/usr/bin/env bash
# Installs Synapse from PyPI into a venv for the tests and the demo.
# Idempotent: does nothing when the venv already has this version.
#   SALON_SYNAPSE_VENV  where to put it (default: .venv/synapse in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
SYNAPSE_VERSION=1.163.2
VENV=${SALON_SYNAPSE_VENV:-.venv/synapse}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import synapse, sys; sys.exit(synapse.__version__ != '$SYNAPSE_VERSION')" 2>/dev/null; then
  echo "Synapse $SYNAPSE_VERSION is ready in $VENV"
  exit 0
fi
echo "Installing Synapse $SYNAPSE_VERSION into $VENV (about 30 s)…"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
echo "Synapse $SYNAPSE_VERSION is ready in $VENV"
