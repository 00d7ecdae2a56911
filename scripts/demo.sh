#!/usr/bin/env bash
# A self-contained Salon demo on this machine: a local Synapse from PyPI, the
# registration, the bridge, a demo room with two users, and a call started in it.
# It installs what it needs first (scripts/setup.sh --demo), prints the join link
# and the credentials, then runs until Ctrl-C.
#   --once   stop after printing, and stop Synapse and the bridge (CI runs this
#            to prove that the README's first command works on a fresh clone)
#   SALON_DEMO_{HS,AS,WEB}_PORT   its ports (default 8008, 9009, 8090)
#   SALON_DEMO_DIR                its config, data and logs (default .salon-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
ONCE=0; [ "${1:-}" = "--once" ] && ONCE=1

# Fixed ports below Linux's ephemeral range (32768+), where the tests take
# theirs (they bind port 0), so the demo and the tests never collide.
HS_PORT=${SALON_DEMO_HS_PORT:-8008}
AS_PORT=${SALON_DEMO_AS_PORT:-9009}
WEB_PORT=${SALON_DEMO_WEB_PORT:-8090}
SERVER_NAME=salon.localhost
SECRET=salon-demo-secret
DEMO=${SALON_DEMO_DIR:-$ROOT/.salon-demo}
VENV=${SALON_SYNAPSE_VENV:-$ROOT/.venv/synapse}

command -v cargo >/dev/null 2>&1 || { echo "Salon is built with Rust: install it from https://rustup.rs, then run this again." >&2; exit 1; }
for p in "$HS_PORT" "$AS_PORT" "$WEB_PORT"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
    echo "Port $p is busy. Stop what uses it or set SALON_DEMO_{HS,AS,WEB}_PORT." >&2; exit 1
  fi
done
# Each run starts from an empty $DEMO, claimed at once: do not wipe the one a
# demo on other ports (another terminal) is still running from.
if [ -f "$DEMO/demo.pid" ] && grep -qs demo.sh "/proc/$(cat "$DEMO/demo.pid")/cmdline"; then
  echo "A demo is already running from $DEMO (pid $(cat "$DEMO/demo.pid")). Stop it or set SALON_DEMO_DIR." >&2; exit 1
fi
rm -rf "$DEMO"; mkdir -p "$DEMO"; echo $$ > "$DEMO/demo.pid"

./scripts/setup.sh --demo

# One build serves the demo and scripts/test.sh. `--workspace` selects the same
# packages as `cargo test --workspace`, so every shared crate is resolved with
# the same features (salon-sfu's `testing` included: the bench/sfu/loadgen
# member asks for it) and the tests afterwards compile only their own targets;
# with `-p salon` instead, `testing` would be off and the tests would compile
# salon-sfu and salon again. The demo does not build the test targets itself
# (`cargo test --no-run`): on 2 cores that adds about 2 minutes to its first
# run for nothing it uses.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")
SALON=$TARGET_DIR/debug/salon
BUILD_LABEL="Building salon"
if [ ! -x "$SALON" ]; then
  # From an empty target folder, downloads included, this build took 19 min on
  # 2 cores (34 min of CPU time); it spreads over more cores, though not evenly.
  BUILD_LABEL="Building salon (first time: about $((36 / $(nproc) + 2)) minutes on $(nproc) cores)"
fi
step "$BUILD_LABEL" cargo build --workspace --bin salon

cat > "$DEMO/config.toml" <<TOML
[homeserver]
url = "http://127.0.0.1:$HS_PORT"
server_name = "$SERVER_NAME"
[appservice]
bind = "127.0.0.1:$AS_PORT"
registration = "appservice.yaml"
[web]
public_url = "http://127.0.0.1:$WEB_PORT"
bind = "127.0.0.1:$WEB_PORT"
assets = "$ROOT/web"
[transcription]
model = "$ROOT/models/base"
[storage]
path = "data"
TOML
"$SALON" generate-registration -c "$DEMO/config.toml" -o "$DEMO/appservice.yaml"
python3 - "$DEMO/signing.key" <<'PY'
import base64, os, sys
open(sys.argv[1], "w").write("ed25519 a_demo " + base64.b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
PY
cat > "$DEMO/homeserver.yaml" <<YAML
server_name: "$SERVER_NAME"
pid_file: $DEMO/homeserver.pid
public_baseurl: http://127.0.0.1:$HS_PORT/
listeners:
  - port: $HS_PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client, federation, openid]
        compress: false
database:
  name: sqlite3
  args:
    database: $DEMO/homeserver.db
media_store_path: $DEMO/media
signing_key_path: $DEMO/signing.key
registration_shared_secret: "$SECRET"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
app_service_config_files: [$DEMO/appservice.yaml]
# A demo is signed into again and again from the call page: lift the login limit.
rc_login:
  address: {per_second: 10, burst_count: 100}
  account: {per_second: 10, burst_count: 100}
YAML

# Synapse and the bridge are stopped however the script ends (--once, Ctrl-C,
# a failed step), so nothing is left holding the ports; one that ignores
# SIGTERM for 10 s is killed.
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "$2 did not start; see $DEMO/*.log" >&2; exit 1; }
start_synapse() {
  "$VENV/bin/python" -m synapse.app.homeserver -c "$DEMO/homeserver.yaml" > "$DEMO/synapse.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$HS_PORT/health" "Synapse"
  for u in alice bob; do
    "$VENV/bin/register_new_matrix_user" -k "$SECRET" -u "$u" -p "demo-$u-password" --no-admin "http://127.0.0.1:$HS_PORT" >/dev/null
  done
}
step "Starting Synapse on 127.0.0.1:$HS_PORT and registering alice and bob" start_synapse

start_salon() {
  "$SALON" run -c "$DEMO/config.toml" > "$DEMO/salon.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$AS_PORT/health" "Salon"
}
step "Starting the bridge" start_salon

HS=http://127.0.0.1:$HS_PORT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
login() { curl -fsS -XPOST "$HS/_matrix/client/v3/login" -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$1\"},\"password\":\"demo-$1-password\"}" | json '["access_token"]'; }
api() { local tok=$1 method=$2 path=$3; shift 3; curl -fsS -X "$method" -H "Authorization: Bearer $tok" "$HS$path" "$@"; }
start_call() {
  ALICE=$(login alice); BOB=$(login bob)
  ROOM=$(api "$ALICE" POST /_matrix/client/v3/createRoom -d "{\"preset\":\"private_chat\",\"name\":\"Salon de démonstration\",\"power_level_content_override\":{\"users\":{\"@visio:$SERVER_NAME\":50}}}" | json '["room_id"]')
  ENC_ROOM=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "$ROOM")
  api "$ALICE" POST "/_matrix/client/v3/rooms/$ENC_ROOM/invite" -d "{\"user_id\":\"@bob:$SERVER_NAME\"}" >/dev/null
  api "$BOB" POST "/_matrix/client/v3/join/$ENC_ROOM" -d '{}' >/dev/null
  api "$ALICE" POST "/_matrix/client/v3/rooms/$ENC_ROOM/invite" -d "{\"user_id\":\"@visio:$SERVER_NAME\"}" >/dev/null
  for _ in $(seq 1 100); do
    api "$ALICE" GET "/_matrix/client/v3/rooms/$ENC_ROOM/state/m.room.member/@visio:$SERVER_NAME" 2>/dev/null | grep -q '"join"' && break; sleep 0.2
  done
  api "$ALICE" PUT "/_matrix/client/v3/rooms/$ENC_ROOM/send/m.room.message/demo1" -d '{"msgtype":"m.text","body":"!visio start"}' >/dev/null
  LINK=""
  for _ in $(seq 1 100); do
    LINK=$(api "$ALICE" GET "/_matrix/client/v3/rooms/$ENC_ROOM/state/org.salon.call/" 2>/dev/null | json '["url"]' 2>/dev/null || true)
    [ -n "$LINK" ] && break; sleep 0.2
  done
  [ -n "$LINK" ] || { echo "The bot did not start the call; see $DEMO/salon.log" >&2; exit 1; }
}
step "Creating the room \"Salon de démonstration\" and starting a call" start_call

# Transcription on (alice created the room, so she may): what is said in the
# call shows as captions on the page and as notices in a thread of the room.
transcription_on() {
  api "$ALICE" PUT "/_matrix/client/v3/rooms/$ENC_ROOM/send/m.room.message/demo2" -d '{"msgtype":"m.text","body":"!visio transcribe on"}' >/dev/null
  TRANSCRIPTION=off
  for _ in $(seq 1 150); do
    if api "$ALICE" GET "/_matrix/client/v3/rooms/$ENC_ROOM/state/org.salon.call/" 2>/dev/null | json '["transcription"]' 2>/dev/null | grep -q True; then
      TRANSCRIPTION=on; break
    fi
    sleep 0.2
  done
  [ "$TRANSCRIPTION" = on ] || echo "Transcription did not start (is the model installed? scripts/install-models.sh); see $DEMO/salon.log" >&2
}
step "Turning transcription on (loads the Whisper model)" transcription_on

REPLY=$(api "$ALICE" GET "/_matrix/client/v3/rooms/$ENC_ROOM/messages?dir=b&limit=20" | python3 -c "
import json,sys
for e in json.load(sys.stdin)['chunk']:
    if e['sender'].startswith('@visio:') and e['content'].get('org.salon.reply', {}).get('command') == 'start':
        print(e['content']['body']); break")

cat <<TXT

  Salon demo is running.
  Homeserver : $HS   (server name $SERVER_NAME)
  Users      : alice / demo-alice-password    bob / demo-bob-password
  Room       : $ROOM  "Salon de démonstration"
  The bot    : @visio:$SERVER_NAME said: $REPLY
  Join link  : $LINK
               open it in a browser and sign in as alice or bob (camera and microphone
               work on 127.0.0.1 without https)
  Transcript : $TRANSCRIPTION: speak in the call and the words appear as captions and, per speaker,
               in a thread of the room; !visio stop posts the minutes and transcript files
  Try        : type !visio status, !visio transcribe off, !visio stop, !visio minutes,
               !visio help in the room (any Matrix client pointed at $HS),
               or: salon doctor -c $DEMO/config.toml
  Logs       : $DEMO/synapse.log  $DEMO/salon.log

TXT
if [ "$ONCE" = 1 ]; then
  "$SALON" doctor -c "$DEMO/config.toml"
  exit 0
fi
echo "Press Ctrl-C to stop."
wait
