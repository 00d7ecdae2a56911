// A minimal widget host for the real Element Call, as Element Web hosts it:
// a matrix-js-sdk client logged in with a password, a matrix-widget-api
// ClientWidgetApi with a WidgetDriver backed by that client, and Element Call
// in an iframe. Bundled by esbuild (run.mjs) and opened as
//   /host.html?hs=…&user=…&password=…&room=…[&e2ee=1]
// With e2ee=1 the client has matrix-js-sdk's Rust crypto (its wasm served by
// run.mjs) and sends Element Call's encrypted to-device messages as Element
// Web does: encrypted by the crypto API, then queued.
// It shows its progress on `window.hostTest` for the Playwright runner.

import { ClientEvent, createClient, MatrixError, RoomStateEvent, SyncState } from 'matrix-js-sdk';
import { ClientWidgetApi, OpenIDRequestState, Widget, WidgetDriver } from 'matrix-widget-api';

const params = new URLSearchParams(location.search);
const test = (window.hostTest = { state: 'starting', error: null, userId: null, deviceId: null, widgetActions: [], toDeviceSent: [], toDeviceReceived: [] });
const log = (...parts) => console.log('[host]', ...parts);

function fail(step, err) {
  test.state = 'error';
  test.error = `${step}: ${err?.message || err}`;
  console.error('[host] failed', test.error);
}

/** Element Web's driver (apps/web/src/stores/widgets/ElementWidgetDriver.ts), reduced to one room. */
class Driver extends WidgetDriver {
  constructor(client, roomId) {
    super();
    this.client = client;
    this.roomId = roomId;
  }

  // Element Web pre-approves everything Element Call asks for.
  async validateCapabilities(requested) {
    return new Set(requested);
  }

  async sendEvent(eventType, content, stateKey = null, roomId = null) {
    roomId = roomId || this.roomId;
    let sent;
    if (stateKey !== null) sent = await this.client.sendStateEvent(roomId, eventType, content, stateKey);
    else if (eventType === 'm.room.redaction') sent = await this.client.redactEvent(roomId, content.redacts);
    else sent = await this.client.sendEvent(roomId, eventType, content);
    return { roomId, eventId: sent.event_id };
  }

  async sendStickyEvent(stickyDurationMs, eventType, content, roomId = null) {
    roomId = roomId || this.roomId;
    const sent = await this.client._unstable_sendStickyEvent(roomId, stickyDurationMs, null, eventType, content);
    return { roomId, eventId: sent.event_id };
  }

  async sendDelayedEvent(delay, eventType, content, stateKey = null, roomId = null) {
    roomId = roomId || this.roomId;
    const sent =
      stateKey !== null
        ? await this.client._unstable_sendDelayedStateEvent(roomId, { delay }, eventType, content, stateKey)
        : await this.client._unstable_sendDelayedEvent(roomId, { delay }, null, eventType, content);
    return { roomId, delayId: sent.delay_id };
  }

  async sendDelayedStickyEvent(delay, stickyDurationMs, eventType, content, roomId = null) {
    roomId = roomId || this.roomId;
    const sent = await this.client._unstable_sendStickyDelayedEvent(roomId, stickyDurationMs, { delay }, null, eventType, content);
    return { roomId, delayId: sent.delay_id };
  }

  async cancelScheduledDelayedEvent(delayId) {
    await this.client._unstable_cancelScheduledDelayedEvent(delayId);
  }

  async restartScheduledDelayedEvent(delayId) {
    await this.client._unstable_restartScheduledDelayedEvent(delayId);
  }

  async sendScheduledDelayedEvent(delayId) {
    await this.client._unstable_sendScheduledDelayedEvent(delayId);
  }

  async sendToDevice(eventType, encrypted, contentMap) {
    if (!encrypted) {
      await this.client.queueToDevice({
        eventType,
        batch: Object.entries(contentMap).flatMap(([userId, devices]) =>
          Object.entries(devices).map(([deviceId, payload]) => ({ userId, deviceId, payload })),
        ),
      });
      return;
    }
    // As Element Web: recipients grouped by identical content, each group
    // encrypted with Olm by the crypto API (which ignores trust), then queued.
    const crypto = this.client.getCrypto();
    if (!crypto) throw new Error('encrypted to-device asked of a host without E2EE (open it with e2ee=1)');
    const groups = new Map();
    for (const [userId, devices] of Object.entries(contentMap)) {
      for (const [deviceId, content] of Object.entries(devices)) {
        const key = JSON.stringify(content);
        if (!groups.has(key)) groups.set(key, []);
        if (deviceId === '*') {
          const known = (await crypto.getUserDeviceInfo([userId], true)).get(userId) || new Map();
          for (const id of known.keys()) groups.get(key).push({ userId, deviceId: id });
        } else {
          groups.get(key).push({ userId, deviceId });
        }
      }
    }
    for (const [content, recipients] of groups) {
      const batch = await crypto.encryptToDeviceMessages(eventType, recipients, JSON.parse(content));
      // The key index (never the key) shows the rotations.
      const index = JSON.parse(content).keys?.index;
      test.toDeviceSent.push({ type: eventType, index, at: Date.now(), to: recipients.map((r) => `${r.userId}:${r.deviceId}`), encrypted: batch.batch.length });
      await this.client.queueToDevice(batch);
    }
  }

  async readRoomTimeline(roomId, eventType, msgtype, stateKey, limit, since) {
    limit = limit > 0 ? limit : Number.MAX_SAFE_INTEGER;
    const room = this.client.getRoom(roomId);
    if (!room) return [];
    const events = [...room.getLiveTimeline().getEvents()];
    const found = [];
    for (let ev = events.pop(); ev && found.length < limit && ev.getId() !== since; ev = events.pop()) {
      if (ev.getType() !== eventType) continue;
      if (eventType === 'm.room.message' && msgtype && msgtype !== ev.getContent().msgtype) continue;
      if (stateKey !== undefined && ev.getStateKey() !== stateKey) continue;
      found.push(ev.getEffectiveEvent());
    }
    return found;
  }

  async readRoomState(roomId, eventType, stateKey) {
    const state = this.client.getRoom(roomId)?.getLiveTimeline().getState('f');
    if (!state) return [];
    if (stateKey === undefined) return state.getStateEvents(eventType).map((e) => e.getEffectiveEvent());
    const event = state.getStateEvents(eventType, stateKey);
    return event ? [event.getEffectiveEvent()] : [];
  }

  async readStickyEvents(roomId) {
    const room = this.client.getRoom(roomId);
    if (!room || typeof room._unstable_getStickyEvents !== 'function') return [];
    return [...room._unstable_getStickyEvents()].map((e) => e.getEffectiveEvent());
  }

  askOpenID(observer) {
    this.client.getOpenIdToken().then(
      (token) => observer.update({ state: OpenIDRequestState.Allowed, token }),
      (err) => {
        console.error('[host] getOpenIdToken failed', err);
        observer.update({ state: OpenIDRequestState.Blocked });
      },
    );
  }

  async getRtcTransports() {
    return { rtc_transports: await this.client._unstable_getRTCTransports() };
  }

  async getMediaConfig() {
    return this.client.getMediaConfig();
  }

  getKnownRooms() {
    return this.client.getRooms().map((room) => room.roomId);
  }

  processError(error) {
    return error instanceof MatrixError ? { matrix_api_error: error.asWidgetApiErrorData() } : undefined;
  }
}

async function main() {
  const baseUrl = params.get('hs');
  const roomId = params.get('room');
  test.state = 'login';
  const response = await fetch(`${baseUrl}/_matrix/client/v3/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: params.get('user') },
      password: params.get('password'),
      initial_device_display_name: 'Element Call test host',
    }),
  });
  const login = await response.json();
  if (!response.ok) throw new Error(`login answered ${response.status}: ${JSON.stringify(login)}`);
  test.userId = login.user_id;
  test.deviceId = login.device_id;

  test.state = 'sync';
  const client = createClient({ baseUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
  const prepared = new Promise((resolve, reject) => {
    client.on(ClientEvent.Sync, (state, _prev, data) => {
      if (state === SyncState.Prepared) resolve();
      if (state === SyncState.Error) reject(data?.error || new Error('sync failed'));
    });
  });
  if (params.get('e2ee') === '1') {
    test.state = 'crypto';
    // Each browser is a fresh profile and each login a new device: an in-memory store is enough.
    await client.initRustCrypto({ useIndexedDB: false });
  }
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  if (!client.getRoom(roomId)) throw new Error(`${login.user_id} is not in ${roomId}`);

  test.state = 'widget';
  const ecUrl = new URL('/ec/index.html', location.href);
  const widgetParams = {
    widgetId: 'salon-test-ec',
    parentUrl: location.href.split('#')[0],
    roomId,
    userId: login.user_id,
    deviceId: login.device_id,
    baseUrl,
    lang: 'en',
    theme: 'light',
    skipLobby: 'true',
    intent: params.get('intent') || 'join_existing_voice',
  };
  for (const [key, value] of Object.entries(widgetParams)) ecUrl.searchParams.set(key, value);
  const widget = new Widget({
    id: widgetParams.widgetId,
    creatorUserId: login.user_id,
    type: 'm.call',
    url: ecUrl.href,
    // Element Web's Element Call widget waits for Element Call's content_loaded.
    waitForIframeLoad: false,
    data: {},
  });
  const iframe = document.createElement('iframe');
  iframe.allow = 'camera; microphone; display-capture; autoplay; clipboard-write';
  iframe.style.cssText = 'width: 100%; height: 100%; border: 0';
  // In the document before the API is made: its transport posts to iframe.contentWindow.
  document.body.appendChild(iframe);
  const api = new ClientWidgetApi(widget, iframe, new Driver(client, roomId));
  api.setViewedRoomId(roomId);
  window.hostApi = api;
  // Actions Element Call sends that a host must answer (Element Web answers them too).
  for (const action of ['set_always_on_screen', 'io.element.device_mute', 'io.element.join', 'im.vector.hangup', 'io.element.close']) {
    api.on(`action:${action}`, (ev) => {
      ev.preventDefault();
      test.widgetActions.push(action);
      log('widget action', action, JSON.stringify(ev.detail.data));
      api.transport.reply(ev.detail, {});
    });
  }
  api.once('ready', () => {
    test.state = 'ready';
    log('widget ready');
  });
  // Live room traffic for the widget, as Element Web's WidgetMessaging feeds it.
  client.on(ClientEvent.Event, (ev) => {
    if (ev.getRoomId() !== roomId) return;
    api.feedEvent(ev.getEffectiveEvent()).catch((err) => log('feedEvent failed', err?.message));
  });
  client.on(RoomStateEvent.Events, (ev) => {
    if (ev.getRoomId() !== roomId) return;
    api.feedStateUpdate(ev.getEffectiveEvent()).catch((err) => log('feedStateUpdate failed', err?.message));
  });
  client.on(ClientEvent.ReceivedToDeviceMessage, ({ message, encryptionInfo }) => {
    test.toDeviceReceived.push({ type: message.type, sender: message.sender, encrypted: encryptionInfo != null });
    api.feedToDevice(message, encryptionInfo != null).catch((err) => log('feedToDevice failed', err?.message));
  });
  test.hangUp = () => api.transport.send('im.vector.hangup', {});
  test.openedWidgetAt = Date.now();
  iframe.src = ecUrl.href;
}

main().catch((err) => fail(test.state, err));
