// The page's MatrixRTC call membership, so that Element (and Element Call)
// show the person on Salon's page as a member of the room's call. The
// bridge gives the page the LiveKit identity `{mxid}:{device_id}`, which is
// how Element Call matches a LiveKit participant to a membership
// (`"${sender}:${device_id}"`, see ../shared/notes/element-call.md §3.5).
//
// What it writes, as Element Call 0.26 does in its default mode (§4.1, §4.3):
// 1. when the homeserver has delayed events (MSC4140, `org.matrix.msc4140` in
//    `/versions`), a delayed leave: the membership's state key with content
//    `{}`, sent by the homeserver 18 s after the page stops restarting it;
// 2. the membership `org.matrix.msc3401.call.member`, state key
//    `_{mxid}_{device}_m.call`, naming Salon's focus URL as its transport;
// 3. a restart of the delayed leave every 4 s while in the call;
// 4. on leaving, the delayed leave is sent now (or `{}` is written).
// A refusal (no power to send the state event, 403) or any other failure is
// logged and the call goes on without a membership.
//
// Two ways to write: the homeserver's client API with the page's own access
// token (`clientTransport`), or the widget API when the page runs inside
// Element (`widgetTransport`, only with the capabilities granted).

export const CALL_MEMBER_EVENT = 'org.matrix.msc3401.call.member';
/** The `/versions` unstable feature of delayed events. */
export const DELAYED_EVENTS_FEATURE = 'org.matrix.msc4140';
/** How long after the last restart the homeserver sends the delayed leave. */
export const LEAVE_DELAY_MS = 18000;
/** How often the delayed leave is restarted while in the call. */
export const RESTART_EVERY_MS = 4000;
/** How long a membership lives without being renewed (Element Call's 4 h). */
export const MEMBERSHIP_EXPIRES_MS = 14400000;
/** How often a long call's membership is written again, well before it expires. */
const RENEW_EVERY_MS = MEMBERSHIP_EXPIRES_MS - 30 * 60 * 1000;

/** The state key of `userId`'s membership from `deviceId` (`_@a:hs_DEV_m.call`). */
export function membershipStateKey(userId, deviceId) {
  return `_${userId}_${deviceId}_m.call`;
}

/** The membership content Element Call 0.26 writes, naming `focusUrl` as the LiveKit service of `roomId`. */
export function membershipContent({ userId, deviceId, roomId, focusUrl }) {
  return {
    application: 'm.call',
    call_id: '',
    scope: 'm.room',
    device_id: deviceId,
    membershipID: `${userId}:${deviceId}`,
    expires: MEMBERSHIP_EXPIRES_MS,
    'm.call.intent': 'video',
    focus_active: { type: 'livekit', focus_selection: 'multi_sfu' },
    foci_preferred: [{ type: 'livekit', livekit_alias: roomId, livekit_service_url: focusUrl }],
  };
}

/** A refused or failed write: `status` (HTTP, or null) and the Matrix `errcode`. */
export class MembershipError extends Error {
  constructor(message, status = null, errcode = null, body = null) {
    super(message);
    this.status = status;
    this.errcode = errcode;
    this.body = body;
  }
}

/** The homeserver's client API with the page's own Matrix session (`{homeserver, access_token}`). */
export function clientTransport(session, roomId, { fetch = globalThis.fetch.bind(globalThis), beacon = defaultBeacon } = {}) {
  const base = session.homeserver.replace(/\/+$/, '');
  const delayedUrl = (delayId) => `${base}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${encodeURIComponent(delayId)}`;
  const request = async (method, url, body) => {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { Accept: 'application/json', 'Content-Type': 'application/json', Authorization: `Bearer ${session.access_token}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new MembershipError(`${method} ${url.replace(base, '')}: ${err?.message || err}`);
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new MembershipError(`${method} ${url.replace(base, '')}: HTTP ${response.status} ${answer.errcode || ''} ${answer.error || ''}`.trim(), response.status, answer.errcode || null, answer);
    }
    return answer;
  };
  return {
    kind: 'client',
    async delayedEvents() {
      try {
        const versions = await request('GET', `${base}/_matrix/client/versions`);
        return versions?.unstable_features?.[DELAYED_EVENTS_FEATURE] === true;
      } catch {
        return false;
      }
    },
    /** Writes a state event now, or schedules it after `delayMs`: `{event_id}` or `{delay_id}`. */
    sendState(type, stateKey, content, delayMs) {
      const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;
      const query = delayMs ? `?org.matrix.msc4140.delay=${delayMs}` : '';
      return request('PUT', `${base}${path}${query}`, content);
    },
    /** `action`: restart, send or cancel. */
    updateDelayed(delayId, action) {
      return request('POST', delayedUrl(delayId), { action });
    },
    /**
     * Sends the delayed leave as the page goes away. The endpoint needs no
     * access token, so a beacon (a plain-text POST, no CORS preflight) does,
     * and it outlives the page.
     */
    sendDelayedOnUnload(delayId) {
      return beacon(delayedUrl(delayId), JSON.stringify({ action: 'send' }));
    },
    /** Writes `{}` as the page goes away (keepalive; best effort). */
    leaveOnUnload(type, stateKey) {
      const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;
      fetch(`${base}${path}`, {
        method: 'PUT',
        keepalive: true,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.access_token}` },
        body: '{}',
      }).catch(() => {});
    },
  };
}

function defaultBeacon(url, text) {
  if (typeof navigator !== 'undefined' && navigator.sendBeacon && navigator.sendBeacon(url, text)) return true;
  fetch(url, { method: 'POST', keepalive: true, headers: { 'Content-Type': 'text/plain' }, body: text }).catch(() => {});
  return true;
}

/**
 * The widget API of the Element that embeds the page: `api` is a started
 * matrix-widget-api `WidgetApi`; `delayed` says whether Element granted the
 * delayed-event capabilities (MSC4157).
 */
export function widgetTransport(api, delayed) {
  const failure = (err) => {
    const details = err?.data?.matrix_api_error;
    return new MembershipError(`widget API: ${err?.message || err}`, details?.http_status ?? null, details?.response?.errcode ?? null, details?.response ?? null);
  };
  const wrap = async (promise) => {
    try {
      return await promise;
    } catch (err) {
      throw failure(err);
    }
  };
  const update = (delayId, action) => {
    if (action === 'restart') return api.restartScheduledDelayedEvent(delayId);
    if (action === 'send') return api.sendScheduledDelayedEvent(delayId);
    return api.cancelScheduledDelayedEvent(delayId);
  };
  return {
    kind: 'widget',
    delayedEvents: async () => delayed,
    sendState: (type, stateKey, content, delayMs) => wrap(api.sendStateEvent(type, stateKey, content, undefined, delayMs || undefined)),
    updateDelayed: (delayId, action) => wrap(update(delayId, action)),
    // Element is still there when the iframe goes: a message suffices.
    sendDelayedOnUnload: (delayId) => update(delayId, 'send').catch(() => {}),
    leaveOnUnload: (type, stateKey) => api.sendStateEvent(type, stateKey, {}).catch(() => {}),
  };
}

/**
 * One device's membership of the room's call. `state` goes
 * idle → joining → joined → leaving → left, or ends in `refused` (the
 * homeserver said no, e.g. 403 without power) or `failed`.
 */
export class CallMembership {
  constructor(transport, { userId, deviceId, roomId, focusUrl }, { log = console, restartMs = RESTART_EVERY_MS, leaveDelayMs = LEAVE_DELAY_MS } = {}) {
    this.transport = transport;
    this.stateKey = membershipStateKey(userId, deviceId);
    this.content = membershipContent({ userId, deviceId, roomId, focusUrl });
    this.log = log;
    this.restartMs = restartMs;
    this.leaveDelayMs = leaveDelayMs;
    this.state = 'idle';
    this.delayId = null;
    this.delayed = false;
    this.error = null;
    this.timer = 0;
    this.renewTimer = 0;
    this.restarting = false;
    this.joining = null;
  }

  /** What the tests see: `{state, state_key, delayed, delay_id, error}`. */
  status() {
    return { state: this.state, state_key: this.stateKey, delayed: this.delayed, delay_id: this.delayId, error: this.error };
  }

  /** Writes the membership (after scheduling its delayed leave). Never throws. */
  join() {
    this.joining ||= this.write().catch((err) => this.fail(err));
    return this.joining;
  }

  async write() {
    this.state = 'joining';
    this.delayed = await this.transport.delayedEvents();
    if (this.delayed) await this.scheduleLeave();
    if (this.state !== 'joining') {
      if (this.delayId) await this.transport.updateDelayed(this.delayId, 'cancel').catch(() => {});
      this.delayId = null;
      return;
    }
    try {
      await this.transport.sendState(CALL_MEMBER_EVENT, this.stateKey, this.content);
    } catch (err) {
      if (this.delayId) {
        await this.transport.updateDelayed(this.delayId, 'cancel').catch(() => {});
        this.delayId = null;
      }
      throw err;
    }
    if (this.state !== 'joining') {
      // Left while the membership was on its way: take it back.
      await this.sendLeave();
      return;
    }
    this.state = 'joined';
    this.log.info?.(`salon: MatrixRTC membership ${this.stateKey} written${this.delayId ? ', delayed leave scheduled' : ''}`);
    if (this.delayId) this.timer = setInterval(() => this.restart(), this.restartMs);
    // A new event's timestamp starts a new 4 h (the content carries no created_ts).
    this.renewTimer = setInterval(() => this.renew(), RENEW_EVERY_MS);
  }

  async renew() {
    if (this.state !== 'joined') return;
    try {
      await this.transport.sendState(CALL_MEMBER_EVENT, this.stateKey, this.content);
    } catch (err) {
      this.log.warn?.(`salon: renewing the MatrixRTC membership failed: ${err.message}`);
    }
  }

  /** Schedules the delayed leave; without one (refused, unsupported), the membership is written anyway. */
  async scheduleLeave() {
    let delay = this.leaveDelayMs;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const answer = await this.transport.sendState(CALL_MEMBER_EVENT, this.stateKey, {}, delay);
        this.delayId = answer?.delay_id || null;
        return;
      } catch (err) {
        const max = Number(err.body?.['org.matrix.msc4140.max_delay']);
        if (err.errcode === 'M_MAX_DELAY_EXCEEDED' && max > 0 && max < delay) {
          delay = max;
          continue;
        }
        if (err.status === 403) throw err;
        this.log.warn?.(`salon: no delayed leave for the MatrixRTC membership (${err.message}); a crash may leave it behind until it expires`);
        return;
      }
    }
  }

  /** Keeps the delayed leave from firing; if it fired anyway (the tab slept), writes the membership again. */
  async restart() {
    if (this.restarting || this.state !== 'joined' || !this.delayId) return;
    this.restarting = true;
    try {
      await this.transport.updateDelayed(this.delayId, 'restart');
    } catch (err) {
      if (err.status === 404 && this.state === 'joined') {
        this.log.warn?.('salon: the delayed leave already fired; writing the MatrixRTC membership again');
        this.delayId = null;
        try {
          await this.scheduleLeave();
          if (this.state === 'joined') await this.transport.sendState(CALL_MEMBER_EVENT, this.stateKey, this.content);
        } catch (again) {
          this.log.warn?.(`salon: could not write the MatrixRTC membership again: ${again.message}`);
        }
      } else {
        this.log.warn?.(`salon: restarting the delayed leave failed: ${err.message}`);
      }
    } finally {
      this.restarting = false;
    }
  }

  fail(err) {
    this.stop();
    this.error = err?.message || String(err);
    this.state = err?.status === 403 ? 'refused' : 'failed';
    const why = err?.status === 403 ? 'the homeserver refused it (no power to send org.matrix.msc3401.call.member in this room?)' : 'it failed';
    this.log.warn?.(`salon: no MatrixRTC membership, so Element will not list this person in the call: ${why}: ${this.error}`);
  }

  stop() {
    clearInterval(this.timer);
    clearInterval(this.renewTimer);
    this.timer = 0;
    this.renewTimer = 0;
  }

  async sendLeave() {
    if (this.delayId) {
      try {
        await this.transport.updateDelayed(this.delayId, 'send');
        return;
      } catch (err) {
        this.log.warn?.(`salon: sending the delayed leave failed (${err.message}); writing it directly`);
      }
    }
    await this.transport.sendState(CALL_MEMBER_EVENT, this.stateKey, {});
  }

  /** Ends the membership (content `{}`). Never throws. */
  async leave() {
    if (this.state === 'joining') {
      this.state = 'leaving';
      await this.joining;
      this.state = 'left';
      return;
    }
    if (this.state !== 'joined') return;
    this.state = 'leaving';
    this.stop();
    try {
      await this.sendLeave();
      this.log.info?.(`salon: MatrixRTC membership ${this.stateKey} ended`);
    } catch (err) {
      this.error = err?.message || String(err);
      this.log.warn?.(`salon: ending the MatrixRTC membership failed: ${this.error}`);
    }
    this.state = 'left';
  }

  /** The page is going away (pagehide): the leave goes out in a way that outlives it. */
  leaveOnUnload() {
    if (this.state !== 'joined' && this.state !== 'leaving') return;
    this.stop();
    if (this.delayId) this.transport.sendDelayedOnUnload(this.delayId);
    else this.transport.leaveOnUnload(CALL_MEMBER_EVENT, this.stateKey);
    this.state = 'left';
  }
}
