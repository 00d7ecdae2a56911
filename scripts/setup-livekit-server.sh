#!/usr/bin/env bash
# Builds LiveKit server (Apache-2.0) from the Go module proxy and installs
# redis-server from Debian, for the cluster tests (tests/cluster.rs) and the
# SFU benchmark's LiveKit case. Idempotent: a second run takes a second.
#
# The binary is built in a throwaway wrapper module (go mod init, go get
# livekit-server@VERSION, go build .../cmd/server), so that a `replace` line in
# a development go.mod cannot stop the build. v1.13.5 is the newest release
# that builds on upstream pion: v1.13.6 and later replace pion's webrtc, ice
# and dtls with LiveKit forks that the Go module proxy does not serve (and use
# their APIs). Nothing of LiveKit's lands in this clone: the binary is cached
# outside it, where a second clone on the same machine finds it too.
#
#   LIVEKIT_VERSION      the release to build (default below)
#   SALON_LIVEKIT_CACHE  where to put the binary (default
#                        ${XDG_CACHE_HOME:-$HOME/.cache}/salon)
# The binary is CACHE/livekit-server-VERSION, and CACHE/livekit-server links to
# it (where tests/cluster.rs looks). Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

VERSION=${LIVEKIT_VERSION:-v1.13.5}
CACHE=${SALON_LIVEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/salon}
BIN="$CACHE/livekit-server-$VERSION"

if ! command -v redis-server >/dev/null 2>&1; then
  apt_redis() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  }
  step "Installing redis-server from Debian" apt_redis
fi

ready() {
  ln -sfn "$(basename "$BIN")" "$CACHE/livekit-server"
  echo "LiveKit server $VERSION is ready"
  echo "$BIN"
}
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  ready
  exit 0
fi

# Go may be installed without being on this shell's PATH.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { echo "setup-livekit-server: Go is not installed (it builds LiveKit server)" >&2; exit 1; }

build() {
  local work rc=0
  work=$(mktemp -d)
  (
    cd "$work"
    go mod init salon.invalid/livekit-wrapper >/dev/null 2>&1
    go get "github.com/livekit/livekit-server@$VERSION" >/dev/null
    mkdir -p "$CACHE"
    CGO_ENABLED=0 go build -mod=mod -trimpath -o "$BIN.tmp" github.com/livekit/livekit-server/cmd/server
    mv "$BIN.tmp" "$BIN"
  ) || rc=$?
  rm -rf "$work"
  return $rc
}
step "Building LiveKit server $VERSION from the Go module proxy (minutes on a first run)" build
ready
