#!/usr/bin/env python3
"""Caption latency of live transcription, against a running `scripts/demo.sh`.

    ./scripts/demo.sh &        # wait for "Press Ctrl-C"
    python3 bench/bridge/caption-latency.py [N]    # N sentences, default 10

alice and bob join the demo room's call with LiveKit's Python SDK
(`.venv/livekit`, from scripts/setup-python-sdk.sh; this script re-runs itself
there), through the join API as the call page does. alice speaks N espeak-ng
sentences at real-time pace, one at a time, with silence around each; the next
starts once the last one's caption and notice have come. For each sentence it
measures, from the end of its last voiced sample (as alice's audio source plays
it out) to:
  - caption: the last final LiveKit transcription segment for it that bob's
    client receives (the caption on everyone's page);
  - notice: the last `org.salon.transcript` notice for it that bob's /sync
    returns (a long poll: it answers as soon as the homeserver has the event).
One warm-up sentence comes first and is not counted. Missing a caption or a
notice within 60 s counts as a failure (exit 1). The demo's call is started and
transcription turned on first if they are not (a call ends once its last
participant leaves, so a second run starts a new one).
  SALON_DEMO_HS_PORT   the demo's homeserver port (default 8008)
  SALON_PY_VENV        the SDK's venv (default .venv/livekit)
"""
import asyncio, json, os, subprocess, sys, tempfile, threading, time, urllib.error, urllib.parse, urllib.request, wave

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
WAIT = 60.0  # for one sentence's caption and notice
SETTLE = 2.0  # quiet time that closes a sentence's window
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
WARM_UP = "Good morning everyone, thank you for joining the call."


def req(method, path, body=None, tok=None, base=HS):
    r = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + tok} if tok else {})})
    return json.load(urllib.request.urlopen(r, timeout=60))


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

    def join_grant(self, call_url):
        """A LiveKit url and token for the call, as the call page gets them."""
        base, call_id = call_url.split("/call/")
        openid = req("POST", f"/_matrix/client/v3/user/{urllib.parse.quote(self.mxid)}/openid/request_token", {}, self.tok)
        return req("POST", f"/_salon/v1/calls/{call_id}/join", {"openid_token": openid, "display_name": self.name}, base=base)


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


def speech(text, tmp):
    """espeak-ng's `text` as 48 kHz int16, and where its voice ends."""
    path = os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", path, text], check=True)
    with wave.open(path) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    resampler = rtc.AudioResampler(rate, RATE, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH)
    frames = resampler.push(bytearray(pcm)) + resampler.flush()
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    voiced = np.nonzero(np.abs(samples.astype(np.int32)) > 300)[0]
    return samples[: voiced[-1] + 1]


class Voice:
    """Feeds an audio source at real-time pace: silence, or a queued sentence."""

    def __init__(self, source):
        self.source, self.queue = source, asyncio.Queue()

    def say(self, samples):
        ended = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((samples, ended))
        return ended

    async def run(self):
        silence = np.zeros(FRAME, dtype=np.int16)
        while True:
            samples, ended = self.queue.get_nowait() if not self.queue.empty() else (None, None)
            chunks = [silence] if samples is None else [samples[i : i + FRAME] for i in range(0, len(samples), FRAME)]
            for chunk in chunks:
                # Keep about 30 ms queued: real-time pace, and no underrun.
                while self.source.queued_duration > 0.03:
                    await asyncio.sleep(0.005)
                tail = FRAME - len(chunk)
                frame = np.concatenate([chunk, silence[:tail]]) if tail else chunk
                await self.source.capture_frame(rtc.AudioFrame(frame.tobytes(), RATE, 1, FRAME))
            if ended is not None:
                # The last voiced sample plays once what is queued before it has.
                ended.set_result(time.monotonic() + self.source.queued_duration - tail / RATE)


async def connect(grant):
    room = rtc.Room()
    await room.connect(grant["url"], grant["token"], options=rtc.RoomOptions(auto_subscribe=True, single_peer_connection=False))
    return room


async def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    alice, bob = User("alice"), User("bob")
    room_id = req("GET", "/_matrix/client/v3/joined_rooms", tok=alice.tok)["joined_rooms"][0]
    room = urllib.parse.quote(room_id)
    call_url = live_call(alice, room)
    notices = []  # (when, org.salon.transcript), appended by the sync thread
    threading.Thread(target=watch_notices, args=(bob, room_id, notices), daemon=True).start()

    captions = []  # (when, text): alice's final segments as bob receives them
    listener = await connect(bob.join_grant(call_url))

    @listener.on("transcription_received")
    def on_caption(segments, participant, publication):
        now = time.monotonic()
        if participant is not None and participant.identity == alice.mxid:
            captions.extend((now, s.text) for s in segments if s.final)

    speaker = await connect(alice.join_grant(call_url))
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    await speaker.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    voice = Voice(source)
    player = asyncio.ensure_future(voice.run())
    await asyncio.sleep(2)  # the bridge taps the new track

    texts = [WARM_UP] + [SENTENCES[i % len(SENTENCES)] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        voiced = [speech(t, tmp) for t in texts]
    caption_lat, notice_lat, missed = [], [], 0
    for i, (text, samples) in enumerate(zip(texts, voiced)):
        said_at = time.monotonic()
        end = await voice.say(samples)
        # The sentence's window: from its end until a final caption and a
        # notice have come and nothing more for SETTLE s. Its last caption and
        # last notice are the ones that carry its end (Whisper may cut it in two).
        deadline, cs, ns = end + WAIT, [], []
        while time.monotonic() < deadline:
            cs = [c for c in captions if c[0] > end]
            ns = [m for m in notices if m[0] > end and m[1].get("speaker") == alice.mxid]
            if cs and ns and time.monotonic() - max(cs[-1][0], ns[-1][0]) > SETTLE:
                break
            await asyncio.sleep(0.05)
        heard = " ".join(c[1].strip() for c in captions if c[0] > said_at)
        if not (cs and ns):
            missed += 1
            print(f"  {i:2}  {'caption' if not cs else 'notice'} missing after {WAIT:.0f} s  said {text!r}", flush=True)
            continue
        c, m = cs[-1][0] - end, ns[-1][0] - end
        print(f"  {i:2}  caption {c:5.2f} s  notice {m:5.2f} s  heard {heard!r}" + ("  (warm-up, not counted)" if i == 0 else ""), flush=True)
        if i > 0:
            caption_lat.append(c)
            notice_lat.append(m)
    player.cancel()
    await speaker.disconnect()
    await listener.disconnect()

    def pct(xs, p):
        xs = sorted(xs)
        return xs[round((len(xs) - 1) * p)] if xs else float("nan")

    print(f"caption latency p50 {pct(caption_lat, .5):.2f} s p95 {pct(caption_lat, .95):.2f} s; room notice p50 {pct(notice_lat, .5):.2f} s p95 {pct(notice_lat, .95):.2f} s ({len(caption_lat)} sentences)")
    if missed:
        sys.exit(f"{missed} sentence(s) got no caption or no notice within {WAIT:.0f} s")


asyncio.run(main())
