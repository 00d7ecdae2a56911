#!/usr/bin/env bash
# Installs LiveKit's Python SDK (its wheel carries the native library and runs
# offline) into a venv, for the SFU's interoperability test.
#   SALON_PY_VENV  where to put it (default: .venv/livekit in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.2.1
VENV=${SALON_PY_VENV:-.venv/livekit}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('livekit') != '$VERSION')" 2>/dev/null; then
  echo "livekit $VERSION is ready in $VENV"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "livekit==$VERSION"
echo "livekit $VERSION is ready in $VENV"
