// livekit-client 2.22.3 (the version Element Call 0.26.1 bundles) with its
// default options, as Element Call signals: it tries the single-PeerConnection
// path /rtc/v1 first. Opened as /lk.html?url=ws://…&token=…; it connects,
// publishes the (fake) microphone and plays every remote audio track.
// Progress and errors are on `window.lkTest` for the Playwright runner.

import { Room, RoomEvent, Track } from 'livekit-client';

const params = new URLSearchParams(location.search);
const test = (window.lkTest = { state: 'connecting', error: null, identity: null, remotes: [] });

async function main() {
  const room = new Room();
  window.lkRoom = room;
  room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
    if (track.kind !== Track.Kind.Audio) return;
    // Played out, as Element Call plays it: Chromium reports inbound levels for rendered audio.
    document.body.appendChild(track.attach());
    test.remotes.push(participant.identity);
  });
  await room.connect(params.get('url'), params.get('token'));
  test.identity = room.localParticipant.identity;
  test.state = 'publishing';
  await room.localParticipant.setMicrophoneEnabled(true);
  test.state = 'connected';
}

main().catch((err) => {
  test.state = 'error';
  test.error = `${err?.name}: ${err?.message}`;
  console.error('[lk] failed', err);
});
