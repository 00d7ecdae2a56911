#!/usr/bin/env bash
# A self-contained Salon demo on this machine: a local Synapse from PyPI, the
# registration, the bridge, a demo room with two users, and a call started in it.
# It prints the join link and the credentials, then runs until Ctrl-C.
#   --once   stop after printing (used by CI to prove the demo works)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ONCE=0; [ "${1:-}" = "--once" ] && ONCE=1

HS_PORT=${SALON_DEMO_HS_PORT:-8008}
AS_PORT=${SALON_DEMO_AS_PORT:-9009}
WEB_PORT=${SALON_DEMO_WEB_PORT:-8090}
SERVER_NAME=salon.localhost
SECRET=salon-demo-secret
DEMO=$ROOT/.salon-demo
VENV=${SALON_SYNAPSE_VENV:-$ROOT/.venv/synapse}

for p in "$HS_PORT" "$AS_PORT" "$WEB_PORT"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
    echo "Port $p is busy. Stop what uses it or set SALON_DEMO_{HS,AS,WEB}_PORT." >&2; exit 1
  fi
done

./scripts/setup-synapse.sh
[ -f web/dist/call.js ] || (cd web && ./build.sh)
echo "Building salon…"
cargo build --quiet --bin salon
SALON=${CARGO_TARGET_DIR:-$ROOT/target}/debug/salon

rm -rf "$DEMO"; mkdir -p "$DEMO"
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

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$VENV/bin/python" -m synapse.app.homeserver -c "$DEMO/homeserver.yaml" > "$DEMO/synapse.log" 2>&1 &
PIDS+=($!)
wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "$2 did not start; see $DEMO/*.log" >&2; exit 1; }
wait_http "http://127.0.0.1:$HS_PORT/health" "Synapse"

for u in alice bob; do
  "$VENV/bin/register_new_matrix_user" -k "$SECRET" -u "$u" -p "demo-$u-password" --no-admin "http://127.0.0.1:$HS_PORT" >/dev/null
done

"$SALON" run -c "$DEMO/config.toml" > "$DEMO/salon.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$AS_PORT/health" "Salon"

HS=http://127.0.0.1:$HS_PORT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
login() { curl -fsS -XPOST "$HS/_matrix/client/v3/login" -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$1\"},\"password\":\"demo-$1-password\"}" | json '["access_token"]'; }
ALICE=$(login alice); BOB=$(login bob)
api() { local tok=$1 method=$2 path=$3; shift 3; curl -fsS -X "$method" -H "Authorization: Bearer $tok" "$HS$path" "$@"; }
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
# Transcription on (alice created the room, so she may): what is said in the
# call shows as captions on the page and as notices in a thread of the room.
api "$ALICE" PUT "/_matrix/client/v3/rooms/$ENC_ROOM/send/m.room.message/demo2" -d '{"msgtype":"m.text","body":"!visio transcribe on"}' >/dev/null
TRANSCRIPTION=off
for _ in $(seq 1 150); do
  if api "$ALICE" GET "/_matrix/client/v3/rooms/$ENC_ROOM/state/org.salon.call/" 2>/dev/null | json '["transcription"]' 2>/dev/null | grep -q True; then
    TRANSCRIPTION=on; break
  fi
  sleep 0.2
done
[ "$TRANSCRIPTION" = on ] || echo "Transcription did not start (is the model installed? scripts/install-models.sh); see $DEMO/salon.log" >&2
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
