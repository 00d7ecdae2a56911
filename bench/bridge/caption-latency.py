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
import asyncio, sys, tempfile, threading, time

from demo_call import RATE, SENTENCES, User, Voice, connect, demo_room, live_call, rtc, speech, watch_notices

WAIT = 60.0  # for one sentence's caption and notice
SETTLE = 2.0  # quiet time that closes a sentence's window
WARM_UP = "Good morning everyone, thank you for joining the call."


async def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    alice, bob = User("alice"), User("bob")
    room_id, room = demo_room(alice)
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
