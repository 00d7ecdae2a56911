// The bridge's HTTP API as the page uses it: the call's public description
// (`GET /_salon/v1/calls/{id}`) and the join request that trades a Matrix
// OpenID token for a LiveKit URL and token (`POST /_salon/v1/calls/{id}/join`).
// Failures become `JoinError`s whose `kind` names the message to show.

/** A failure the page can explain: `kind` is one of not-found, unauthorized, forbidden, rate, server, network. */
export class JoinError extends Error {
  constructor(kind, detail, status) {
    super(detail || kind);
    this.kind = kind;
    this.detail = detail || '';
    this.status = status;
  }
}

/** Maps an HTTP status to the kind of failure the user is told about. */
export function failureKind(status) {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 429) return 'rate';
  return 'server';
}

async function request(path, init) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: { Accept: 'application/json', ...(init?.headers || {}) } });
  } catch (err) {
    throw new JoinError('network', String(err?.message || err));
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && (body.errcode || body.error) ? `${body.errcode || ''} ${body.error || ''}`.trim() : `HTTP ${response.status}`;
    throw new JoinError(failureKind(response.status), detail, response.status);
  }
  if (body === null) throw new JoinError('server', `HTTP ${response.status}: not JSON`, response.status);
  return body;
}

/** The call the page is for: `{call_id, room_id, room_name, state, homeserver_url, server_name, transcription, focus_url}`. */
export async function fetchCall(callId) {
  const call = await request(`/_salon/v1/calls/${encodeURIComponent(callId)}`);
  if (call.state === 'ended') throw new JoinError('not-found', 'call ended', 404);
  return call;
}

/**
 * Trades an OpenID token for the SFU's address and a LiveKit token: `{url, token}`.
 * With `deviceId`, the LiveKit identity is `{mxid}:{deviceId}`, the one
 * Element Call matches to the page's MatrixRTC membership.
 */
export async function joinCall(callId, openidToken, displayName, deviceId = null) {
  const grant = await request(`/_salon/v1/calls/${encodeURIComponent(callId)}/join`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ openid_token: openidToken, display_name: displayName, ...(deviceId ? { device_id: deviceId } : {}) }),
  });
  if (typeof grant.url !== 'string' || typeof grant.token !== 'string') {
    throw new JoinError('server', 'join answer lacks url or token');
  }
  return grant;
}

/** A moderator's act (`mute`, `stop_video`, `remove` on `target`; `mute_all`, `lock`, `unlock`; `admit`/`deny` a `guest`). */
export async function moderate(callId, openidToken, act) {
  return request(`/_salon/v1/calls/${encodeURIComponent(callId)}/moderate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ openid_token: openidToken, ...act }),
  });
}

/** The token in a `/guest/<token>` path (a guest link), or null. */
export function guestTokenFromPath(pathname) {
  const match = /^\/guest\/([A-Za-z0-9_-]{43})\/?$/.exec(pathname);
  return match ? match[1] : null;
}

/** What a guest link opens: `{call_id, room_name, invited_by, name_hint, transcription}`. */
export async function fetchGuestLink(token) {
  return request(`/_salon/v1/guests/${token}`);
}

/** Knocks at the lobby as `displayName`: `{guest, secret, number}`. */
export async function knock(token, displayName) {
  return request(`/_salon/v1/guests/${token}/knock`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ display_name: displayName }),
  });
}

/** Where a knock stands: `{state: 'waiting'|'denied'}` or `{state: 'admitted', url, token, identity, name}`. */
export async function knockState(token, guest, secret) {
  return request(`/_salon/v1/guests/${token}/knock/${encodeURIComponent(guest)}`, {
    headers: { Authorization: `Bearer ${secret}` },
  });
}

/** The call id in a `/call/<id>` path, or null. */
export function callIdFromPath(pathname) {
  const match = /^\/call\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}
