// The pre-join screen's media: lists microphones and cameras, keeps a local
// microphone and camera track for the chosen devices, shows the camera
// preview and a microphone level meter. The tracks it holds are the ones the
// call publishes on join, so the browser asks for the devices once.

import { createLocalAudioTrack, createLocalVideoTrack, VideoPresets } from 'livekit-client';
import { t } from './i18n.js';

const STORAGE_KEY = 'salon.devices';

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}');
  } catch {
    return {};
  }
}

/** Root-mean-square level of an analyser's current window, 0..1. */
export function analyserLevel(analyser, buffer = new Float32Array(analyser.fftSize)) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const sample of buffer) sum += sample * sample;
  return Math.sqrt(sum / buffer.length);
}

export class PreJoin {
  constructor(doc = document) {
    this.micSelect = doc.getElementById('mic-select');
    this.cameraSelect = doc.getElementById('camera-select');
    this.video = doc.getElementById('preview-video');
    this.previewOff = doc.getElementById('preview-off');
    this.meter = doc.getElementById('mic-meter');
    this.meterFill = doc.getElementById('mic-meter-fill');
    this.micToggle = doc.getElementById('prejoin-mic-toggle');
    this.camToggle = doc.getElementById('prejoin-cam-toggle');
    this.error = doc.getElementById('prejoin-error');
    this.errorText = doc.getElementById('prejoin-error-text');
    const saved = remembered();
    this.micOn = saved.micOn !== false;
    this.camOn = saved.camOn !== false;
    this.micId = saved.micId || '';
    this.cameraId = saved.cameraId || '';
    this.audioTrack = null;
    this.videoTrack = null;
    this.audioContext = null;
    this.meterFrame = 0;
    this.micSelect.addEventListener('change', () => this.chooseMic(this.micSelect.value));
    this.cameraSelect.addEventListener('change', () => this.chooseCamera(this.cameraSelect.value));
    this.micToggle.addEventListener('click', () => this.setMic(!this.micOn));
    this.camToggle.addEventListener('click', () => this.setCamera(!this.camOn));
    this.onDeviceChange = () => this.listDevices();
    navigator.mediaDevices?.addEventListener?.('devicechange', this.onDeviceChange);
    // Without a user gesture yet (a remembered session, a widget), the meter's
    // AudioContext starts suspended: the first click or key wakes it.
    this.onGesture = () => this.audioContext?.resume().catch(() => {});
    for (const type of ['pointerdown', 'keydown']) doc.addEventListener(type, this.onGesture, { once: true, capture: true });
  }

  /** Opens the chosen devices, lists them all and starts the preview and meter. */
  async start() {
    this.showToggles();
    await Promise.all([this.micOn && !this.audioTrack ? this.openMic() : null, this.camOn && !this.videoTrack ? this.openCamera() : null]);
    await this.listDevices();
  }

  remember() {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ micOn: this.micOn, camOn: this.camOn, micId: this.micId, cameraId: this.cameraId }));
  }

  showProblem(err) {
    if (!err) {
      this.error.hidden = true;
      return;
    }
    const denied = err?.name === 'NotAllowedError' || err?.name === 'SecurityError';
    this.errorText.textContent = denied ? t('prejoin.denied') : t('prejoin.device.error');
    this.error.hidden = false;
  }

  async openMic() {
    try {
      this.audioTrack = await createLocalAudioTrack({ deviceId: this.micId || undefined, echoCancellation: true, noiseSuppression: true, autoGainControl: true });
      this.micId = this.audioTrack.mediaStreamTrack.getSettings().deviceId || this.micId;
      this.startMeter();
      this.showProblem(null);
    } catch (err) {
      this.audioTrack = null;
      this.micOn = false;
      this.showToggles();
      this.showProblem(err);
    }
  }

  async openCamera() {
    try {
      this.videoTrack = await createLocalVideoTrack({ deviceId: this.cameraId || undefined, resolution: VideoPresets.h720.resolution });
      this.cameraId = this.videoTrack.mediaStreamTrack.getSettings().deviceId || this.cameraId;
      this.videoTrack.attach(this.video);
      this.showProblem(null);
    } catch (err) {
      this.videoTrack = null;
      this.camOn = false;
      this.showProblem(err);
    }
    this.showToggles();
  }

  async chooseMic(deviceId) {
    this.micId = deviceId;
    this.remember();
    if (this.audioTrack) {
      await this.audioTrack.setDeviceId({ exact: deviceId });
      this.startMeter();
    }
  }

  async chooseCamera(deviceId) {
    this.cameraId = deviceId;
    this.remember();
    if (this.videoTrack) await this.videoTrack.setDeviceId({ exact: deviceId });
  }

  async setMic(on) {
    this.micOn = on;
    if (on && !this.audioTrack) await this.openMic();
    if (!on && this.audioTrack) {
      this.stopMeter();
      this.audioTrack.stop();
      this.audioTrack = null;
    }
    this.remember();
    this.showToggles();
    await this.listDevices();
  }

  async setCamera(on) {
    this.camOn = on;
    if (on && !this.videoTrack) await this.openCamera();
    if (!on && this.videoTrack) {
      this.videoTrack.detach(this.video);
      this.videoTrack.stop();
      this.videoTrack = null;
    }
    this.remember();
    this.showToggles();
    await this.listDevices();
  }

  showToggles() {
    const mic = this.micOn && this.audioTrack !== null;
    const cam = this.camOn && this.videoTrack !== null;
    this.micToggle.setAttribute('aria-pressed', String(this.micOn));
    this.micToggle.setAttribute('aria-label', this.micOn ? t('prejoin.mic.on') : t('prejoin.mic.off'));
    this.micToggle.title = this.micToggle.getAttribute('aria-label');
    this.micToggle.querySelector('use').setAttribute('href', this.micOn ? '#i-mic' : '#i-mic-off');
    this.camToggle.setAttribute('aria-pressed', String(this.camOn));
    this.camToggle.setAttribute('aria-label', this.camOn ? t('prejoin.cam.on') : t('prejoin.cam.off'));
    this.camToggle.title = this.camToggle.getAttribute('aria-label');
    this.camToggle.querySelector('use').setAttribute('href', this.camOn ? '#i-cam' : '#i-cam-off');
    this.previewOff.hidden = cam;
    this.video.hidden = !cam;
    this.meter.classList.toggle('meter-off', !mic);
  }

  async listDevices() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      devices = [];
    }
    this.fillSelect(this.micSelect, devices.filter((d) => d.kind === 'audioinput'), this.micId);
    this.fillSelect(this.cameraSelect, devices.filter((d) => d.kind === 'videoinput'), this.cameraId);
  }

  fillSelect(select, devices, chosen) {
    const usable = devices.filter((d) => d.deviceId);
    const options = usable.map((device, index) => {
      const option = document.createElement('option');
      option.value = device.deviceId;
      option.textContent = device.label || t('prejoin.device.default', { n: index + 1 });
      option.selected = device.deviceId === chosen;
      return option;
    });
    if (options.length === 0) {
      const none = document.createElement('option');
      none.value = '';
      none.textContent = t('prejoin.no.device');
      options.push(none);
    }
    select.replaceChildren(...options);
    select.disabled = usable.length === 0;
  }

  startMeter() {
    this.stopMeter();
    if (!this.audioTrack) return;
    this.audioContext ||= new AudioContext();
    const source = this.audioContext.createMediaStreamSource(new MediaStream([this.audioTrack.mediaStreamTrack]));
    const analyser = this.audioContext.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    this.meterSource = source;
    const tick = () => {
      const level = Math.min(1, analyserLevel(analyser, buffer) * 4);
      const percent = Math.round(level * 100);
      this.meterFill.style.width = `${percent}%`;
      this.meter.setAttribute('aria-valuenow', String(percent));
      this.meterFrame = requestAnimationFrame(tick);
    };
    tick();
  }

  stopMeter() {
    cancelAnimationFrame(this.meterFrame);
    this.meterSource?.disconnect();
    this.meterSource = null;
    this.meterFill.style.width = '0%';
    this.meter.setAttribute('aria-valuenow', '0');
  }

  /** Hands the open tracks over to the call; the pre-join screen no longer owns them. */
  takeTracks() {
    this.stopMeter();
    if (this.videoTrack) this.videoTrack.detach(this.video);
    const tracks = { audio: this.audioTrack, video: this.videoTrack, micId: this.micId, cameraId: this.cameraId };
    this.audioTrack = null;
    this.videoTrack = null;
    return tracks;
  }

  /** Stops everything the screen opened. */
  stop() {
    this.stopMeter();
    this.audioTrack?.stop();
    this.videoTrack?.stop();
    this.audioTrack = null;
    this.videoTrack = null;
    navigator.mediaDevices?.removeEventListener?.('devicechange', this.onDeviceChange);
  }
}
