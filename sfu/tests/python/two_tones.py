"""Two livekit Python SDK participants against Salon's SFU.

Each publishes a different tone (alice 440 Hz, bob 880 Hz) and must hear only
the other's. Then bob must receive a caption the server sends as a LiveKit
Transcription packet. Driven by sfu/tests/python_sdk.rs, which starts the SFU
and passes the URL and tokens:

    python two_tones.py WS_URL ALICE_TOKEN BOB_TOKEN

Prints READY when both hear each other (the driver then sends the caption),
then one JSON line with the measurements; exits non-zero on failure.
"""

import asyncio
import json
import math
import sys

from livekit import rtc

SAMPLE_RATE = 48000
FRAME_SAMPLES = 480  # 10 ms
TONES = {"alice": 440.0, "bob": 880.0}
LISTEN_SECONDS = 3.0


def goertzel(samples, freq):
    """Power of `freq` in `samples` (ints), normalised by length."""
    k = 2.0 * math.cos(2.0 * math.pi * freq / SAMPLE_RATE)
    s_prev = s_prev2 = 0.0
    for x in samples:
        s = x + k * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
    power = s_prev2 * s_prev2 + s_prev * s_prev - k * s_prev * s_prev2
    return power / max(len(samples), 1) ** 2


async def play_tone(source, freq, stop):
    phase = 0.0
    step = 2.0 * math.pi * freq / SAMPLE_RATE
    while not stop.is_set():
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME_SAMPLES)
        data = frame.data
        for i in range(FRAME_SAMPLES):
            data[i] = int(8000 * math.sin(phase))
            phase += step
        await source.capture_frame(frame)


class Listener:
    def __init__(self, name):
        self.name = name
        self.samples = []
        self.heard_from = set()
        self.captions = []
        self.enough = asyncio.Event()
        self.caption = asyncio.Event()

    async def consume(self, track, participant):
        self.heard_from.add(participant.identity)
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        skipped = 0
        async for event in stream:
            data = event.frame.data
            if skipped < SAMPLE_RATE // 2:  # let the decoder settle
                skipped += len(data)
                continue
            self.samples.extend(data)
            if len(self.samples) >= SAMPLE_RATE * LISTEN_SECONDS:
                self.enough.set()
                break
        await stream.aclose()


async def join(url, token, name):
    room = rtc.Room()
    listener = Listener(name)
    tasks = []

    @room.on("track_subscribed")
    def on_track(track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(listener.consume(track, participant)))

    @room.on("transcription_received")
    def on_caption(segments, participant, publication):
        for s in segments:
            listener.captions.append(
                {"text": s.text, "final": s.final, "from": participant.identity if participant else None}
            )
        listener.caption.set()

    await room.connect(
        url,
        token,
        options=rtc.RoomOptions(auto_subscribe=True, single_peer_connection=False),
    )
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track(f"{name}-tone", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    return room, source, listener, tasks


async def main():
    url, alice_token, bob_token = sys.argv[1:4]
    alice = await join(url, alice_token, "alice")
    bob = await join(url, bob_token, "bob")
    stop = asyncio.Event()
    players = [
        asyncio.ensure_future(play_tone(alice[1], TONES["alice"], stop)),
        asyncio.ensure_future(play_tone(bob[1], TONES["bob"], stop)),
    ]
    result = {}
    ok = True
    try:
        await asyncio.wait_for(
            asyncio.gather(alice[2].enough.wait(), bob[2].enough.wait()), timeout=20
        )
        print("READY", flush=True)
        for name, (_, _, listener, _) in (("alice", alice), ("bob", bob)):
            other = "bob" if name == "alice" else "alice"
            own_power = goertzel(listener.samples, TONES[name])
            other_power = goertzel(listener.samples, TONES[other])
            rms = math.sqrt(sum(x * x for x in listener.samples) / len(listener.samples))
            result[name] = {
                "heard_from": sorted(listener.heard_from),
                "rms": round(rms, 1),
                "other_tone_power": other_power,
                "own_tone_power": own_power,
            }
            if listener.heard_from != {other}:
                ok = False
            if rms < 500 or other_power < 100 * max(own_power, 1e-9):
                ok = False
        await asyncio.wait_for(bob[2].caption.wait(), timeout=10)
        result["bob_captions"] = bob[2].captions
        if not any(c["text"] == "caption check" and c["from"] == "alice" for c in bob[2].captions):
            ok = False
    except asyncio.TimeoutError:
        ok = False
        result["error"] = "timed out"
        for name, (_, _, listener, _) in (("alice", alice), ("bob", bob)):
            result[name] = {"heard_from": sorted(listener.heard_from), "samples": len(listener.samples)}
    finally:
        stop.set()
        for p in players:
            p.cancel()
        for room, _, _, tasks in (alice, bob):
            for t in tasks:
                t.cancel()
            await room.disconnect()
    result["ok"] = ok
    print(json.dumps(result), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
