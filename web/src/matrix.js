// The page's own Matrix session, for people who open the call link outside
// Element/Tchap: discover the homeserver's login flows, log in with a password
// or through SSO, keep the access token in sessionStorage only (it dies with
// the tab), and request the OpenID token that proves the user's identity to
// the bridge. Nothing here talks to the bridge.

const STORAGE_KEY = 'salon.matrix.session';

/** Why a login failed: `kind` is one of failed, rate, unreachable, no-password. */
export class LoginError extends Error {
  constructor(kind, detail) {
    super(detail || kind);
    this.kind = kind;
  }
}

function clientUrl(homeserver, path) {
  return `${homeserver.replace(/\/+$/, '')}/_matrix/client/v3${path}`;
}

async function call(homeserver, path, init = {}) {
  let response;
  try {
    response = await fetch(clientUrl(homeserver, path), {
      ...init,
      headers: { Accept: 'application/json', ...(init.body ? { 'Content-Type': 'application/json' } : {}), ...(init.headers || {}) },
    });
  } catch (err) {
    throw new LoginError('unreachable', String(err?.message || err));
  }
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

/** The login choices the homeserver offers: `{password: bool, sso: [{id, name}] | null}`. */
export async function loginFlows(homeserver) {
  const { status, body } = await call(homeserver, '/login');
  if (status !== 200) throw new LoginError('unreachable', `GET /login: HTTP ${status}`);
  const flows = Array.isArray(body.flows) ? body.flows : [];
  const password = flows.some((flow) => flow.type === 'm.login.password');
  const ssoFlow = flows.find((flow) => flow.type === 'm.login.sso' || flow.type === 'm.login.cas');
  let sso = null;
  if (ssoFlow) {
    const providers = Array.isArray(ssoFlow.identity_providers) ? ssoFlow.identity_providers : [];
    sso = providers.length > 0 ? providers.map((p) => ({ id: String(p.id), name: String(p.name || p.id) })) : [{ id: null, name: null }];
  }
  return { password, sso };
}

/** Turns what a person typed (`alice`, `@alice:example.org`) into a login identifier. */
export function userIdentifier(typed) {
  return { type: 'm.id.user', user: typed.trim() };
}

function rememberSession(homeserver, body) {
  const session = { homeserver, user_id: body.user_id, access_token: body.access_token, device_id: body.device_id };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  return session;
}

async function login(homeserver, payload) {
  const { status, body } = await call(homeserver, '/login', {
    method: 'POST',
    body: JSON.stringify({ ...payload, initial_device_display_name: 'Salon (visio)' }),
  });
  if (status === 200 && body.access_token && body.user_id) return rememberSession(homeserver, body);
  if (status === 429) throw new LoginError('rate', body.error);
  if (status === 403 || status === 401 || status === 400) throw new LoginError('failed', body.error);
  throw new LoginError('unreachable', `POST /login: HTTP ${status}`);
}

/** Logs in with `m.login.password` and remembers the session for this tab. */
export function loginWithPassword(homeserver, user, password) {
  return login(homeserver, { type: 'm.login.password', identifier: userIdentifier(user), password });
}

/** Where to send the browser to log in through SSO; it comes back here with `?loginToken=`. */
export function ssoRedirectUrl(homeserver, providerId, returnTo) {
  const provider = providerId ? `/${encodeURIComponent(providerId)}` : '';
  return clientUrl(homeserver, `/login/sso/redirect${provider}?redirectUrl=${encodeURIComponent(returnTo)}`);
}

/** Completes an SSO login with the `loginToken` the homeserver handed back. */
export function loginWithToken(homeserver, token) {
  return login(homeserver, { type: 'm.login.token', token });
}

/** The session this tab remembers for `homeserver`, or null. */
export function storedSession(homeserver) {
  try {
    const session = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    return session && session.homeserver === homeserver && session.access_token ? session : null;
  } catch {
    return null;
  }
}

export function forgetSession() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Logs the tab's device out (best effort) and forgets it. */
export async function logout(session) {
  forgetSession();
  try {
    await call(session.homeserver, '/logout', { method: 'POST', body: '{}', headers: { Authorization: `Bearer ${session.access_token}` } });
  } catch {
    // The token dies with the tab's storage anyway.
  }
}

/**
 * Requests an OpenID token for the logged-in user. A 401 means the stored
 * session is dead: it is forgotten and a `LoginError('failed')` is thrown.
 */
export async function requestOpenIdToken(session) {
  const path = `/user/${encodeURIComponent(session.user_id)}/openid/request_token`;
  const { status, body } = await call(session.homeserver, path, {
    method: 'POST',
    body: '{}',
    headers: { Authorization: `Bearer ${session.access_token}` },
  });
  if (status === 200 && body.access_token) return body;
  if (status === 401) {
    forgetSession();
    throw new LoginError('failed', body.error || 'session expired');
  }
  throw new LoginError('unreachable', `openid/request_token: HTTP ${status}`);
}

/** The user's display name on the homeserver, or null. */
export async function displayName(session) {
  try {
    const { status, body } = await call(session.homeserver, `/profile/${encodeURIComponent(session.user_id)}/displayname`, {
      headers: { Authorization: `Bearer ${session.access_token}` },
    });
    return status === 200 && typeof body.displayname === 'string' && body.displayname.trim() ? body.displayname : null;
  } catch {
    return null;
  }
}

/** `@alice:example.org` → `alice`, for a name to show when there is no display name. */
export function localpart(userId) {
  const match = /^@([^:]+)/.exec(userId || '');
  return match ? match[1] : userId || '';
}
