#!/usr/bin/env bash
# Start-up time and memory of the bridge with end-to-end encryption on and off,
# against a running `scripts/demo.sh` (its Synapse and registration).
#
#   ./scripts/demo.sh &            # wait for "Press Ctrl-C"
#   bench/bridge/e2ee-startup.sh   # stops the demo's bridge first
#
# For each mode it starts `salon run` three times: cold (empty storage: for
# E2EE a new device, its keys, cross-signing) and twice warm (the kept device).
# Start-up is the time from spawn to /health answering (the bridge serves only
# once it is ready, after its first sync when E2EE is on). RSS is read from
# /proc after 5 s of idling (VmRSS) together with the peak (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEMO=$ROOT/.salon-demo
SALON=${CARGO_TARGET_DIR:-$ROOT/target}/debug/salon
AS_PORT=${SALON_DEMO_AS_PORT:-9009}
[ -f "$DEMO/config.toml" ] || { echo "run ./scripts/demo.sh first" >&2; exit 1; }
curl -fsS "http://127.0.0.1:${SALON_DEMO_HS_PORT:-8008}/health" >/dev/null || { echo "the demo's Synapse is not up" >&2; exit 1; }

# The demo's own bridge holds the appservice port: stop that one process.
demo_pid=$(pgrep -f "salon run -c $DEMO/config.toml" || true)
if [ -n "$demo_pid" ]; then kill "$demo_pid"; sleep 1; fi

now_ms() { date +%s%3N; }
measure() { # mode run
  local mode=$1 run=$2 cfg="$DEMO/bench-$1.toml"
  local t0 pid
  t0=$(now_ms)
  "$SALON" run -c "$cfg" >> "$DEMO/bench-$mode.log" 2>&1 &
  pid=$!
  until curl -fsS "http://127.0.0.1:$AS_PORT/health" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "salon ($mode) died; see $DEMO/bench-$mode.log" >&2; exit 1; }
    sleep 0.02
  done
  local t1; t1=$(now_ms)
  sleep 5
  local rss hwm
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf "%-4s %-5s start-up %5d ms   RSS %4d MiB   peak %4d MiB\n" \
    "$mode" "$run" $((t1 - t0)) $((rss / 1024)) $((hwm / 1024))
}

for mode in off on; do
  enabled=false; [ "$mode" = on ] && enabled=true
  rm -rf "$DEMO/bench-$mode-data" "$DEMO/bench-$mode.log"
  sed -e "s|^path = \"data\"|path = \"bench-$mode-data\"|" "$DEMO/config.toml" > "$DEMO/bench-$mode.toml"
  printf '\n[e2ee]\nenabled = %s\n' "$enabled" >> "$DEMO/bench-$mode.toml"
  measure "$mode" cold
  measure "$mode" warm
  measure "$mode" warm
done
echo "(the demo's bridge was stopped; restart scripts/demo.sh to use the demo again)"
