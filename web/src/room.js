// One joined call: a livekit-client `Room` connected to Salon's SFU in the
// two-PeerConnection `/rtc` mode, the pre-join tracks published, remote audio
// played through `<audio>` elements, and the room's events turned into what
// the call view shows (tiles, speaking marks, captions, the transcription
// banner). It also measures each remote participant's received audio level
// for the end-to-end tests.

import { DisconnectReason, Room, RoomEvent, Track, VideoPresets } from 'livekit-client';
import { analyserLevel } from './prejoin.js';
import { localpart } from './matrix.js';

/** How long a join may take before the page gives up and says so. */
const CONNECT_TIMEOUT_MS = 20000;

/** The data-packet topic on which the bridge may announce transcription: payload `{"transcription": bool}`. */
export const TRANSCRIPTION_TOPIC = 'salon.transcription';
/** The bridge's moderation messages (docs/api.md, "Moderation"). */
export const MODERATION_TOPIC = 'org.salon.moderation';
/** The bridge's lobby messages: a guest waits, was admitted or denied. */
export const LOBBY_TOPIC = 'org.salon.lobby';

/** A lobby message as `{guest, name, invitedBy, state}`, or null if malformed. */
export function lobbyMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (!message || typeof message.guest !== 'string' || typeof message.name !== 'string') return null;
  if (!['waiting', 'admitted', 'denied'].includes(message.state)) return null;
  return { guest: message.guest, name: message.name, invitedBy: String(message.invited_by ?? ''), state: message.state };
}

/** Whether a LiveKit identity is `user`'s: their page's (the mxid) or a device's (`mxid:DEVICE`). */
function identityOf(identity, user) {
  return typeof user === 'string' && user !== '' && (identity === user || identity.startsWith(`${user}:`));
}

/**
 * What a moderation message means for the person behind `identity`:
 * `{action, byName}` when it acts on them (named, or everyone but the
 * moderator for `mute_all`), else null. Malformed messages are null.
 */
export function moderationFor(text, identity) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (!message || typeof message !== 'object' || typeof message.action !== 'string') return null;
  const mine = identityOf(identity, message.target);
  const everyone = message.action === 'mute_all' && typeof message.by === 'string' && !identityOf(identity, message.by);
  if (!mine && !everyone) return null;
  const byName = typeof message.by_name === 'string' && message.by_name.trim() ? message.by_name : String(message.by ?? '');
  return { action: message.action, byName };
}

/** Reads a transcription flag from room metadata or a data payload (JSON text); null when it says nothing. */
export function transcriptionFlag(text) {
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    const flag = value?.transcription;
    if (typeof flag === 'boolean') return flag;
    if (flag === 'on' || flag === 'off') return flag === 'on';
    return null;
  } catch {
    return null;
  }
}

/** What the page tells the user when the room drops it: a key of `left.*`. */
export function leaveReason(reason) {
  switch (reason) {
    case DisconnectReason.CLIENT_INITIATED:
      return 'left.body';
    case DisconnectReason.DUPLICATE_IDENTITY:
      return 'left.duplicate';
    case DisconnectReason.PARTICIPANT_REMOVED:
      return 'left.removed';
    case DisconnectReason.ROOM_DELETED:
    case DisconnectReason.ROOM_CLOSED:
      return 'left.ended';
    default:
      return 'left.lost';
  }
}

function publishedTrack(participant, source) {
  const publication = participant.getTrackPublication(source);
  if (!publication || publication.isMuted || !publication.track) return null;
  return publication.track;
}

export class CallSession {
  /**
   * `view`: the CallView; `hooks`: `{onTranscription(on), onLeft(reasonKey), onNotice(kind, on), onControls(), onAnnounce(key, name)}`;
   * `audioContext`: created in the join click, so it may run.
   */
  constructor(view, hooks, audioContext) {
    this.view = view;
    this.hooks = hooks;
    this.audioContext = audioContext;
    this.meters = new Map();
    this.segments = [];
    this.segmentIndex = new Map();
    this.room = null;
    this.leaving = false;
    this.connected = false;
  }

  /** Connects to `url` with `token` and publishes the pre-join tracks (`{audio, video, micId, cameraId}`). */
  async connect(url, token, tracks) {
    const room = new Room({
      singlePeerConnection: false,
      adaptiveStream: false,
      dynacast: false,
      disconnectOnPageLeave: true,
      audioCaptureDefaults: { deviceId: tracks.micId || undefined, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      videoCaptureDefaults: { deviceId: tracks.cameraId || undefined, resolution: VideoPresets.h720.resolution },
      publishDefaults: { simulcast: false, red: false, dtx: true },
    });
    this.room = room;
    const render = () => this.render();
    room
      .on(RoomEvent.ParticipantConnected, (participant) => {
        this.hooks.onAnnounce('call.joined', participant.name || localpart(participant.identity));
        render();
      })
      .on(RoomEvent.ParticipantDisconnected, (participant) => {
        this.hooks.onAnnounce('call.left', participant.name || localpart(participant.identity));
        this.dropMeters(participant.identity);
        render();
      })
      .on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
        if (track.kind === Track.Kind.Audio) this.playAudio(track, participant);
        render();
      })
      .on(RoomEvent.TrackUnsubscribed, (track, publication, participant) => {
        if (track.kind === Track.Kind.Audio) this.stopAudio(track, participant);
        render();
      })
      .on(RoomEvent.TrackMuted, render)
      .on(RoomEvent.TrackUnmuted, render)
      .on(RoomEvent.LocalTrackPublished, render)
      .on(RoomEvent.LocalTrackUnpublished, render)
      .on(RoomEvent.TrackPublished, render)
      .on(RoomEvent.TrackUnpublished, render)
      .on(RoomEvent.ActiveSpeakersChanged, render)
      .on(RoomEvent.ParticipantNameChanged, render)
      .on(RoomEvent.TranscriptionReceived, (segments, participant) => this.transcription(segments, participant))
      .on(RoomEvent.RoomMetadataChanged, (metadata) => this.metadata(metadata))
      .on(RoomEvent.DataReceived, (payload, participant, kind, topic) => {
        if (topic === LOBBY_TOPIC && !participant) {
          const entry = lobbyMessage(new TextDecoder().decode(payload));
          if (entry) this.hooks.onLobby?.(entry);
          return;
        }
        if (topic === MODERATION_TOPIC && !participant) {
          const act = moderationFor(new TextDecoder().decode(payload), room.localParticipant.identity);
          if (act) {
            this.moderated = act;
            this.hooks.onModerated?.(act);
          }
          return;
        }
        if (topic !== TRANSCRIPTION_TOPIC) return;
        const flag = transcriptionFlag(new TextDecoder().decode(payload));
        if (flag !== null) this.hooks.onTranscription(flag);
      })
      .on(RoomEvent.Reconnecting, () => this.hooks.onNotice('reconnecting', true))
      .on(RoomEvent.Reconnected, () => this.hooks.onNotice('reconnecting', false))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.hooks.onNotice('audio-blocked', !room.canPlaybackAudio))
      .on(RoomEvent.MediaDevicesError, () => this.hooks.onNotice('device', true))
      .on(RoomEvent.Disconnected, (reason) => this.disconnected(reason));

    let timer;
    try {
      const timeout = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the media server in ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      });
      await Promise.race([room.connect(url, token, { autoSubscribe: true, maxRetries: 2 }), timeout]);
    } catch (err) {
      this.leaving = true;
      await room.disconnect().catch(() => {});
      tracks.audio?.stop();
      tracks.video?.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.connected = true;
    this.metadata(room.metadata);
    if (tracks.audio) await room.localParticipant.publishTrack(tracks.audio, { source: Track.Source.Microphone });
    if (tracks.video) await room.localParticipant.publishTrack(tracks.video, { source: Track.Source.Camera });
    if (!room.canPlaybackAudio) this.hooks.onNotice('audio-blocked', true);
    this.render();
  }

  metadata(metadata) {
    const flag = transcriptionFlag(metadata);
    if (flag !== null) this.hooks.onTranscription(flag);
  }

  /** The participants as the view wants them: the local one first, then the others in join order. */
  describe() {
    const room = this.room;
    if (!room) return [];
    const everyone = [room.localParticipant, ...room.remoteParticipants.values()];
    return everyone.map((p) => {
      const mic = p.getTrackPublication(Track.Source.Microphone);
      return {
        identity: p.identity,
        name: p.name || localpart(p.identity),
        local: p === room.localParticipant,
        speaking: p.isSpeaking,
        micMuted: !mic || mic.isMuted,
        camera: publishedTrack(p, Track.Source.Camera),
        screen: publishedTrack(p, Track.Source.ScreenShare),
      };
    });
  }

  render() {
    this.view.render(this.describe());
    this.hooks.onControls();
  }

  playAudio(track, participant) {
    const element = track.attach();
    element.dataset.identity = participant.identity;
    document.getElementById('remote-audio').append(element);
    // The level is read from a second, muted element's stream: received audio
    // reads as silence in WebAudio unless an element plays it.
    const stream = new MediaStream([track.mediaStreamTrack]);
    const probe = new Audio();
    probe.muted = true;
    probe.srcObject = stream;
    probe.play().catch(() => {});
    const source = this.audioContext.createMediaStreamSource(stream);
    const analyser = this.audioContext.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const meters = this.meters.get(participant.identity) || [];
    meters.push({ track, probe, source, analyser, buffer: new Float32Array(analyser.fftSize) });
    this.meters.set(participant.identity, meters);
  }

  stopAudio(track, participant) {
    for (const element of track.detach()) element.remove();
    const meters = this.meters.get(participant.identity) || [];
    const kept = [];
    for (const meter of meters) {
      if (meter.track === track) this.closeMeter(meter);
      else kept.push(meter);
    }
    this.meters.set(participant.identity, kept);
  }

  closeMeter(meter) {
    meter.source.disconnect();
    meter.probe.srcObject = null;
  }

  dropMeters(identity) {
    for (const meter of this.meters.get(identity) || []) this.closeMeter(meter);
    this.meters.delete(identity);
  }

  /** The received audio level (RMS, 0..1) of `identity`'s loudest audio track; 0 when none is received. */
  remoteAudioLevel(identity) {
    if (this.audioContext.state === 'suspended') this.audioContext.resume().catch(() => {});
    let level = 0;
    for (const meter of this.meters.get(identity) || []) level = Math.max(level, analyserLevel(meter.analyser, meter.buffer));
    return level;
  }

  transcription(segments, participant) {
    const identity = participant?.identity || '';
    const speaker = participant ? participant.name || localpart(identity) : '';
    for (const segment of segments) {
      const known = this.segmentIndex.get(segment.id);
      const entry = { id: segment.id, identity, speaker, text: segment.text, final: !!segment.final, language: segment.language };
      if (known !== undefined) this.segments[known] = entry;
      else {
        this.segmentIndex.set(segment.id, this.segments.length);
        this.segments.push(entry);
      }
      this.view.caption(entry);
    }
    // Captions mean speech is being transcribed: never let the banner say otherwise.
    if (segments.length > 0) this.hooks.onTranscription(true);
  }

  captions() {
    return this.segments.map((s) => ({ ...s }));
  }

  participants() {
    return this.describe().map((p) => p.identity);
  }

  state() {
    const local = this.room?.localParticipant;
    return {
      mic: !!local?.isMicrophoneEnabled,
      camera: !!local?.isCameraEnabled,
      screen: !!local?.isScreenShareEnabled,
    };
  }

  async toggleMic() {
    const local = this.room.localParticipant;
    await local.setMicrophoneEnabled(!local.isMicrophoneEnabled);
    this.render();
  }

  async toggleCamera() {
    const local = this.room.localParticipant;
    await local.setCameraEnabled(!local.isCameraEnabled);
    this.render();
  }

  async toggleScreen() {
    const local = this.room.localParticipant;
    try {
      await local.setScreenShareEnabled(!local.isScreenShareEnabled, { audio: false });
    } catch (err) {
      // Closing the browser's picker is not a failure worth a message.
      if (err?.name !== 'NotAllowedError' && err?.name !== 'AbortError') this.hooks.onNotice('screen', true);
    }
    this.render();
  }

  async startAudio() {
    await this.room.startAudio();
    await this.audioContext.resume().catch(() => {});
    this.hooks.onNotice('audio-blocked', !this.room.canPlaybackAudio);
  }

  async leave() {
    this.leaving = true;
    await this.room.disconnect(true);
  }

  disconnected(reason) {
    for (const identity of [...this.meters.keys()]) this.dropMeters(identity);
    document.getElementById('remote-audio').replaceChildren();
    this.view.clear();
    // A join that failed is reported by `connect`'s caller, not as a departure.
    if (!this.connected) return;
    this.connected = false;
    if (!this.leaving && reason === DisconnectReason.PARTICIPANT_REMOVED && this.moderated?.action === 'remove') {
      this.hooks.onLeft('left.removed.by', { name: this.moderated.byName });
      return;
    }
    this.hooks.onLeft(this.leaving ? 'left.body' : leaveReason(reason));
  }
}
