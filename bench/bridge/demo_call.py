"""What the bench scripts that run against `scripts/demo.sh` share: its users,
its room's call, and LiveKit's Python SDK to join it as the call page does.

Importing this re-runs the importing script in the SDK's venv
(`.venv/livekit`, from scripts/setup-python-sdk.sh) when numpy or the SDK is
missing here.
  SALON_DEMO_HS_PORT   the demo's homeserver port (default 8008)
  SALON_PY_VENV        the SDK's venv (default .venv/livekit)
"""
import asyncio, json, os, subprocess, sys, time, urllib.error, urllib.parse, urllib.request, wave

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.environ.get("SALON_PY_VENV", os.path.join(ROOT, ".venv/livekit"))
try:
    import numpy as np
    from livekit import rtc
except ImportError:
    python = os.path.join(VENV, "bin/python")
    if not os.path.exists(python) or os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit(f"No livekit SDK in {VENV}: run scripts/setup-python-sdk.sh (or set SALON_PY_VENV).")
    os.execv(python, [python, *sys.argv])

HS = f"http://127.0.0.1:{os.environ.get('SALON_DEMO_HS_PORT', '8008')}"
RATE = 48000
FRAME = RATE // 100  # 10 ms
# Short plain sentences, as said in a meeting, that Whisper hears well from espeak-ng.
SENTENCES = [
    "The budget for the new school library is ready for review.",
    "We agreed to open the library in September.",
    "I will send the final report to the minister on Friday.",
    "The workers need two more weeks to paint the walls.",
    "Please check the train times before the meeting.",
    "The new windows will keep the classrooms warm in winter.",
    "Our team will visit the hospital on Monday morning.",
    "The city council approved the plan for a bicycle lane.",
    "We should order more chairs for the conference room.",
    "The children planted twelve trees behind the museum.",
]


def req(method, path, body=None, tok=None, base=HS, headers=None):
    """One JSON request; a 429 is waited out (as long as it asks, 5 s if it
    does not say) for up to 2 minutes."""
    deadline = time.monotonic() + 120
    while True:
        r = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + tok} if tok else {}), **(headers or {})})
        try:
            return json.load(urllib.request.urlopen(r, timeout=60))
        except urllib.error.HTTPError as e:
            if e.code != 429 or time.monotonic() > deadline:
                raise
            try:
                wait = json.load(e).get("retry_after_ms", 5000) / 1000
            except ValueError:
                wait = 5.0
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())) + 0.1)


class User:
    def __init__(self, name):
        login = req("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": f"demo-{name}-password"})
        self.name, self.tok, self.mxid = name, login["access_token"], login["user_id"]

    def call_state(self, room):
        try:
            return req("GET", f"/_matrix/client/v3/rooms/{room}/state/org.salon.call/", tok=self.tok)
        except urllib.error.HTTPError:
            return {}

    def command(self, room, text):
        """Says `text` and waits for the bot's reply; returns its content."""
        ev = req("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/cl{time.time_ns()}", {"msgtype": "m.text", "body": text}, self.tok)["event_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for e in req("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=20", tok=self.tok)["chunk"]:
                if e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == ev:
                    return e["content"]
            time.sleep(0.2)
        sys.exit(f"The bot did not answer {text!r}.")

    def join_grant(self, call_url, forwarded_for=None):
        """A LiveKit url and token for the call, as the call page gets them;
        `forwarded_for` is the client address a reverse proxy would report
        (the bridge counts join attempts per address)."""
        base, call_id = call_url.split("/call/")
        openid = req("POST", f"/_matrix/client/v3/user/{urllib.parse.quote(self.mxid)}/openid/request_token", {}, self.tok)
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
        return req("POST", f"/_salon/v1/calls/{call_id}/join", {"openid_token": openid, "display_name": self.name}, base=base, headers=headers)


def demo_room(user):
    """The demo room (the first room `user` is in), and its id quoted for paths."""
    room_id = req("GET", "/_matrix/client/v3/joined_rooms", tok=user.tok)["joined_rooms"][0]
    return room_id, urllib.parse.quote(room_id)


def live_call(alice, room):
    """The demo room's call, live and transcribed; starts it if need be."""
    state = alice.call_state(room)
    url = state.get("url") if state.get("state") == "active" else None
    if url is None:
        reply = alice.command(room, "!visio start").get("org.salon.reply", {})
        url = reply.get("url") or sys.exit(f"No live call in the demo room (!visio start: {reply.get('outcome')}).")
    base, call_id = url.split("/call/")
    if not req("GET", f"/_salon/v1/calls/{call_id}", base=base).get("transcription"):
        alice.command(room, "!visio transcribe on")
        deadline = time.monotonic() + 60
        while not req("GET", f"/_salon/v1/calls/{call_id}", base=base).get("transcription"):
            if time.monotonic() > deadline:
                sys.exit("Transcription did not come on (is the model installed? scripts/install-models.sh).")
            time.sleep(0.2)
    return url


def watch_notices(user, room_id, notices):
    """Records when each transcript notice reaches `user`'s /sync (a daemon thread)."""
    filt = urllib.parse.quote(json.dumps({"room": {"rooms": [room_id], "timeline": {"types": ["m.room.message"], "limit": 50}, "state": {"types": []}, "ephemeral": {"types": []}}, "presence": {"types": []}, "account_data": {"types": []}}))
    since = req("GET", f"/_matrix/client/v3/sync?filter={filt}&timeout=0", tok=user.tok)["next_batch"]
    while True:
        try:
            body = req("GET", f"/_matrix/client/v3/sync?filter={filt}&timeout=30000&since={since}", tok=user.tok)
        except OSError:
            time.sleep(0.5)
            continue
        now = time.monotonic()
        since = body["next_batch"]
        for e in body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", []):
            t = e["content"].get("org.salon.transcript")
            if t:
                notices.append((now, t))


def speech(text, tmp, voice="en-us"):
    """espeak-ng's `text` as 48 kHz int16, and where its voice ends."""
    path = os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text], check=True)
    with wave.open(path) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    resampler = rtc.AudioResampler(rate, RATE, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH)
    frames = resampler.push(bytearray(pcm)) + resampler.flush()
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    voiced = np.nonzero(np.abs(samples.astype(np.int32)) > 300)[0]
    return samples[: voiced[-1] + 1]


class Voice:
    """Feeds an audio source at real-time pace: silence, or a queued sentence,
    in frames of `frame` samples with about `ahead` seconds queued."""

    def __init__(self, source, frame=FRAME, ahead=0.03):
        self.source, self.queue, self.frame, self.ahead = source, asyncio.Queue(), frame, ahead

    def say(self, samples):
        ended = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((samples, ended))
        return ended

    async def run(self):
        size = self.frame
        silence = np.zeros(size, dtype=np.int16)
        while True:
            samples, ended = self.queue.get_nowait() if not self.queue.empty() else (None, None)
            chunks = [silence] if samples is None else [samples[i : i + size] for i in range(0, len(samples), size)]
            for chunk in chunks:
                # Keep `ahead` queued: real-time pace, and no underrun.
                while self.source.queued_duration > self.ahead:
                    await asyncio.sleep(size / RATE / 2)
                tail = size - len(chunk)
                frame = np.concatenate([chunk, silence[:tail]]) if tail else chunk
                await self.source.capture_frame(rtc.AudioFrame(frame.tobytes(), RATE, 1, size))
            if ended is not None:
                # The last voiced sample plays once what is queued before it has.
                ended.set_result(time.monotonic() + self.source.queued_duration - tail / RATE)


async def connect(grant):
    room = rtc.Room()
    await room.connect(grant["url"], grant["token"], options=rtc.RoomOptions(auto_subscribe=True, single_peer_connection=False))
    return room
