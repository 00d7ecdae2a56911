#!/usr/bin/env bash
# Installs Synapse from PyPI into a venv for the tests and the demo.
# Idempotent: does nothing when the venv already has this version.
#   SALON_SYNAPSE_VENV  where to put it (default: .venv/synapse in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
SYNAPSE_VERSION=1.163.2
VENV=${SALON_SYNAPSE_VENV:-.venv/synapse}
# Ask for the installed distribution's version: synapse.__version__ appends git
# details ("1.163.2 (b=main,73457cf)") when run from inside a git checkout, which
# made this check fail and reinstall Synapse on every run.
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('matrix-synapse') != '$SYNAPSE_VERSION')" 2>/dev/null; then
  echo "Synapse $SYNAPSE_VERSION is ready in $VENV"
  exit 0
fi
echo "Installing Synapse $SYNAPSE_VERSION into $VENV (about a minute)…"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
echo "Synapse $SYNAPSE_VERSION is ready in $VENV (installed in $SECONDS s)"
