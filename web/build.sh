#!/usr/bin/env bash
# Builds the call page: installs the exact npm packages of package-lock.json,
# then bundles src/call.js (with livekit-client and matrix-widget-api) and
# src/call.css into dist/, which the bridge serves under /assets/.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
rm -rf dist
npx --no-install esbuild src/call.js --bundle --format=esm --target=chrome100,firefox100,safari15 \
  --minify --sourcemap --legal-comments=linked --log-level=warning --outfile=dist/call.js
npx --no-install esbuild src/call.css --bundle --minify --log-level=warning --outfile=dist/call.css
echo "built: $(ls dist | tr '\n' ' ')"
