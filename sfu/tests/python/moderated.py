"""A moderator's acts as unmodified livekit Python SDK clients see them.

alice and bob join Salon's SFU; bob sends a tone that alice hears. The driver
(sfu/tests/python_sdk.rs) is told READY and mutes bob's microphone through
the SFU's API: alice must see bob's track muted and hear silence from him,
and bob's own SDK must show its publication muted (LiveKit's mute request).
The driver is told MUTED and removes alice: her SDK must be disconnected
with reason PARTICIPANT_REMOVED, and joining again with her token must fail.

    python moderated.py WS_URL ALICE_TOKEN BOB_TOKEN

Prints READY and MUTED (waiting for a line on stdin after each), then one
JSON line with what was seen; exits non-zero on failure.
"""

import asyncio
import json
import math
import sys

from livekit import rtc

SAMPLE_RATE = 48000
FRAME_SAMPLES = 480


async def play_tone(source, stop):
    phase = 0.0
    step = 2.0 * math.pi * 440.0 / SAMPLE_RATE
    while not stop.is_set():
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME_SAMPLES)
        data = frame.data
        for i in range(FRAME_SAMPLES):
            data[i] = int(8000 * math.sin(phase))
            phase += step
        await source.capture_frame(frame)


class Ear:
    """The RMS of what alice receives, over the last 0.5 s."""

    def __init__(self):
        self.window = []

    async def consume(self, track):
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        async for event in stream:
            self.window.extend(event.frame.data)
            del self.window[: max(0, len(self.window) - SAMPLE_RATE // 2)]

    def rms(self):
        if not self.window:
            return 0.0
        return math.sqrt(sum(x * x for x in self.window) / len(self.window))


async def wait_until(check, seconds):
    for _ in range(int(seconds * 10)):
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def next_line():
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main():
    url, alice_token, bob_token = sys.argv[1:4]
    options = rtc.RoomOptions(auto_subscribe=True, single_peer_connection=False)
    alice, bob = rtc.Room(), rtc.Room()
    ear = Ear()
    tasks = []
    seen = {"alice_saw_bob_muted": False, "alice_disconnect_reason": None}

    @alice.on("track_subscribed")
    def on_track(track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(ear.consume(track)))

    @alice.on("track_muted")
    def on_muted(participant, publication):
        if participant.identity == "bob":
            seen["alice_saw_bob_muted"] = True

    @alice.on("disconnected")
    def on_disconnected(reason):
        seen["alice_disconnect_reason"] = rtc.DisconnectReason.Name(reason) if isinstance(reason, int) else str(reason)

    await alice.connect(url, alice_token, options=options)
    await bob.connect(url, bob_token, options=options)
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("bob-mic", source)
    await bob.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    stop = asyncio.Event()
    # bob keeps sending whatever he is told: the SFU must enforce the mute.
    player = asyncio.ensure_future(play_tone(source, stop))
    result = {}
    ok = True
    try:
        result["heard_before"] = await wait_until(lambda: ear.rms() > 1000, 20)
        result["rms_before"] = round(ear.rms(), 1)
        print("READY", flush=True)
        await next_line()
        await wait_until(lambda: seen["alice_saw_bob_muted"], 10)
        result["alice_saw_bob_muted"] = seen["alice_saw_bob_muted"]
        result["bob_sees_own_track_muted"] = await wait_until(
            lambda: any(p.muted for p in bob.local_participant.track_publications.values()), 5
        )
        await asyncio.sleep(1.0)
        result["rms_after_mute"] = round(ear.rms(), 1)
        print("MUTED", flush=True)
        await next_line()
        await wait_until(lambda: seen["alice_disconnect_reason"] is not None, 10)
        result["alice_disconnect_reason"] = seen["alice_disconnect_reason"]
        again = rtc.Room()
        try:
            await asyncio.wait_for(again.connect(url, alice_token, options=options), timeout=15)
            result["rejoin_with_old_token"] = "joined"
            await again.disconnect()
        except Exception as err:  # the SDK raises ConnectError
            result["rejoin_with_old_token"] = f"refused: {type(err).__name__}"
        ok = (
            result["heard_before"]
            and result["alice_saw_bob_muted"]
            and result["rms_after_mute"] < 50
            and "REMOVED" in str(result["alice_disconnect_reason"])
            and result["rejoin_with_old_token"].startswith("refused")
        )
    except asyncio.TimeoutError:
        ok = False
        result["error"] = "timed out"
    finally:
        stop.set()
        player.cancel()
        for t in tasks:
            t.cancel()
        await bob.disconnect()
        await alice.disconnect()
    result["ok"] = bool(ok)
    print(json.dumps(result), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
