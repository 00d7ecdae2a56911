// The call page's entry point, served by the bridge at `/call/{call_id}`.
// It walks a person through: loading the call, proving who they are (the
// widget API's OpenID token inside Element/Tchap, or a login to the
// homeserver), the pre-join check of microphone and camera, and the call
// itself. Each step is a `view-*` section of call.html; `setState` switches
// between them and `window.salonTest` lets end-to-end tests watch.

import { applyStaticText, currentLanguage, pickLanguage, setLanguage, t } from './i18n.js';
import { callIdFromPath, fetchCall, fetchGuestLink, guestTokenFromPath, joinCall, JoinError, knock, knockState, moderate } from './bridge.js';
import {
  displayName as profileName,
  localpart,
  loginFlows,
  LoginError,
  loginWithPassword,
  loginWithToken,
  logout,
  requestOpenIdToken,
  ssoRedirectUrl,
  storedSession,
} from './matrix.js';
import { startWidget, widgetContext, widgetMembershipTransport, widgetOpenIdToken, widgetStatus } from './widget.js';
import { CallMembership, clientTransport } from './membership.js';
import { PreJoin } from './prejoin.js';
import { CallView } from './call-view.js';
import { CallSession } from './room.js';
import { startDemo } from './demo.js';

const $ = (id) => document.getElementById(id);
const VIEWS = { loading: 'view-loading', login: 'view-login', prejoin: 'view-prejoin', joining: 'view-prejoin', lobby: 'view-lobby', 'in-call': 'view-call', left: 'view-left', error: 'view-error' };
/** How often a guest's page asks whether a moderator let them in. */
const LOBBY_POLL_MS = 2000;
const NAME_KEY = 'salon.displayName';

const page = {
  state: 'loading',
  callId: null,
  call: null,
  widget: null,
  /** A guest's link: `{token, link}` (no Matrix account, a lobby). */
  guest: null,
  session: null,
  prejoin: null,
  view: null,
  live: null,
  membership: null,
  transcription: false,
  captionsHidden: false,
  error: null,
  timer: 0,
};

function setState(state) {
  page.state = state;
  document.body.dataset.state = state;
  for (const [name, id] of Object.entries(VIEWS)) {
    if (name !== state && VIEWS[state] !== id) $(id).hidden = true;
  }
  $(VIEWS[state]).hidden = false;
}

function focusHeading(viewId) {
  const heading = $(viewId).querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** Shows or hides the "transcription is on" banner, and with it the captions panel and its button. */
export function setTranscriptionBanner(on) {
  page.transcription = !!on;
  $('transcription-banner').hidden = !on;
  document.body.dataset.transcription = on ? 'on' : 'off';
  showCaptionsPanel();
}

/** Captions exist only while transcription is on; the person may still hide them. */
function showCaptionsPanel() {
  $('captions-button').hidden = !page.transcription;
  $('captions').hidden = !page.transcription || page.captionsHidden;
  page.view?.layout();
  if (page.state === 'in-call') showControls();
}

function showError(kind, detail = '', retry = () => location.reload()) {
  page.error = { kind, detail };
  const key = {
    'no-call': 'error.no.call',
    'not-found': 'error.not.found',
    unauthorized: 'error.unauthorized',
    forbidden: 'error.forbidden',
    rate: 'error.rate',
    network: 'error.network',
    media: 'error.media',
    widget: 'error.widget',
    'guest-link': 'error.guest.link',
    denied: 'error.denied',
  }[kind] || 'error.server';
  $('error-message').textContent = t(key);
  $('error-detail').textContent = detail ? t('error.details', { detail }) : '';
  $('error-detail').hidden = !detail;
  $('error-detail').dataset.kind = kind;
  $('retry-button').hidden = kind === 'no-call' || kind === 'guest-link' || kind === 'denied';
  $('retry-button').onclick = retry;
  setState('error');
  focusHeading('view-error');
}

const notices = new Map();

function notice(kind, on, vars = {}) {
  if (on) notices.set(kind, vars);
  else notices.delete(kind);
  const order = ['reconnecting', 'moderated', 'audio-blocked', 'screen', 'device'];
  const current = order.find((k) => notices.has(k));
  $('notice').hidden = !current;
  if (!current) return;
  const text = { reconnecting: 'call.reconnecting', moderated: notices.get('moderated')?.key, 'audio-blocked': 'call.audio.blocked', screen: 'call.screen.error', device: 'call.device.error' }[current];
  $('notice-text').textContent = t(text, notices.get(current));
  const action = $('notice-action');
  action.hidden = current === 'reconnecting';
  action.textContent = current === 'audio-blocked' ? t('call.audio.enable') : 'OK';
  action.onclick = async () => {
    if (current === 'audio-blocked') await page.live?.startAudio();
    notice(current, false);
  };
}

// ---- Moderators ----

/** Shows (or hides) a moderator's controls: tile actions, mute all, lock, the lobby. */
function enableModeration(on) {
  page.moderator = on;
  page.view.onModerate = on ? (action, identity) => moderatorAct({ action, target: identity }) : null;
  $('mute-all-button').hidden = !on;
  $('lock-button').hidden = !on;
  if (!on) $('lobby-panel').hidden = true;
  page.live?.render();
}

/** Sends a moderator's act to the bridge; says in the page when it is refused. */
async function moderatorAct(act) {
  try {
    const outcome = await moderate(page.callId, await openIdToken(), act);
    if (act.action === 'lock' || act.action === 'unlock') {
      page.locked = act.action === 'lock';
      $('lock-button').setAttribute('aria-pressed', String(page.locked));
    }
    return outcome;
  } catch (err) {
    const reason = err?.detail || err?.message || '';
    console.warn('salon: a moderation act was refused', reason);
    $('announcer').textContent = t('moderation.refused', { reason });
    notice('moderated', true, { key: 'moderation.refused', reason });
    return null;
  }
}

/** A lobby message: a guest waits (listed with admit and deny), or was decided (unlisted). */
function lobbyChanged({ guest, name, invitedBy, state }) {
  if (!page.moderator) return;
  const list = $('lobby-list');
  const existing = [...list.children].find((li) => li.dataset.guest === guest);
  if (state !== 'waiting') {
    existing?.remove();
  } else if (!existing) {
    const item = document.createElement('li');
    item.className = 'lobby-entry';
    item.dataset.guest = guest;
    const label = document.createElement('span');
    label.className = 'lobby-name';
    label.textContent = t('lobby.is.waiting', { name, user: invitedBy });
    item.append(label);
    for (const [action, key, style] of [['admit', 'lobby.admit', 'button-primary'], ['deny', 'lobby.deny', 'button-secondary']]) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = `button ${style} lobby-${action}`;
      button.textContent = t(key);
      button.addEventListener('click', async () => {
        for (const b of item.querySelectorAll('button')) b.disabled = true;
        if (await moderatorAct({ action, guest })) item.remove();
        else for (const b of item.querySelectorAll('button')) b.disabled = false;
        $('lobby-panel').hidden = list.children.length === 0;
      });
      item.append(button);
    }
    list.append(item);
    $('announcer').textContent = label.textContent;
  }
  $('lobby-panel').hidden = list.children.length === 0;
}

/** A moderator acted on this person: say who (a removal is said on the page that follows). */
function moderated({ action, byName }) {
  const key = { mute: 'call.muted.by', mute_all: 'call.muted.by', stop_video: 'call.video.stopped.by' }[action];
  if (key) notice('moderated', true, { key, name: byName });
}

// ---- Login (standalone) ----

async function showLogin(message) {
  setState('login');
  const server = page.call.server_name;
  $('login-intro').textContent = t('login.intro', { server });
  $('login-user-hint').textContent = t('login.user.hint', { server });
  showLoginError(message);
  let flows = { password: true, sso: null };
  try {
    flows = await loginFlows(page.call.homeserver_url);
  } catch (err) {
    showLoginError(message || t('login.unreachable'));
  }
  $('login-form').hidden = !flows.password;
  if (!flows.password && !flows.sso) showLoginError(t('login.no.password'));
  const buttons = (flows.sso || []).map((provider) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button button-secondary button-block';
    button.textContent = t('login.sso', { provider: provider.name || t('login.sso.default') });
    button.addEventListener('click', () => {
      const back = new URL(location.href);
      back.searchParams.delete('loginToken');
      location.assign(ssoRedirectUrl(page.call.homeserver_url, provider.id, back.toString()));
    });
    return button;
  });
  $('login-sso-buttons').replaceChildren(...buttons);
  $('login-sso').hidden = buttons.length === 0;
  $('login-sso').querySelector('.divider').hidden = !flows.password;
  focusHeading('view-login');
}

function showLoginError(message) {
  $('login-error').hidden = !message;
  $('login-error-text').textContent = message || '';
}

function loginMessage(err) {
  const kind = err instanceof LoginError ? err.kind : 'unreachable';
  return t({ failed: 'login.failed', rate: 'login.rate', 'no-password': 'login.no.password' }[kind] || 'login.unreachable');
}

async function submitLogin(event) {
  event.preventDefault();
  const user = $('login-user').value.trim();
  const password = $('login-password').value;
  $('login-user').setAttribute('aria-invalid', String(!user));
  $('login-password').setAttribute('aria-invalid', String(!password));
  if (!user || !password) {
    showLoginError(t('login.missing'));
    return;
  }
  const submit = $('login-submit');
  submit.disabled = true;
  submit.textContent = t('login.busy');
  try {
    page.session = await loginWithPassword(page.call.homeserver_url, user, password);
    $('login-password').value = '';
    showLoginError(null);
    await showPrejoin();
  } catch (err) {
    showLoginError(loginMessage(err));
    $('login-password').focus();
  } finally {
    submit.disabled = false;
    submit.textContent = t('login.submit');
  }
}

// ---- Pre-join ----

async function showPrejoin() {
  setState('prejoin');
  if (page.guest) {
    const name = $('display-name');
    if (!name.value) name.value = sessionStorage.getItem(NAME_KEY) || '';
    $('prejoin-identity-text').textContent = t('prejoin.guest', { user: page.guest.link.invited_by });
    $('logout-button').hidden = true;
    page.prejoin ||= new PreJoin();
    focusHeading('view-prejoin');
    await page.prejoin.start();
    return;
  }
  const userId = page.widget ? page.widget.userId : page.session.user_id;
  const name = $('display-name');
  if (!name.value) {
    const stored = sessionStorage.getItem(NAME_KEY);
    const known = page.widget ? page.widget.displayName : await profileName(page.session);
    name.value = stored || known || localpart(userId);
  }
  $('prejoin-identity-text').textContent = page.widget ? t('prejoin.widget', { user: userId || '' }) : t('prejoin.signed.as', { user: userId });
  $('logout-button').hidden = !!page.widget;
  page.prejoin ||= new PreJoin();
  focusHeading('view-prejoin');
  await page.prejoin.start();
}

function setJoinBusy(busy) {
  const button = $('join-button');
  button.disabled = busy;
  button.textContent = t(busy ? 'prejoin.joining' : 'prejoin.join');
  $('view-prejoin').setAttribute('aria-busy', String(busy));
}

async function openIdToken() {
  if (page.widget) {
    try {
      return await widgetOpenIdToken(page.widget);
    } catch (err) {
      throw new JoinError('widget', String(err?.message || err));
    }
  }
  try {
    return await requestOpenIdToken(page.session);
  } catch (err) {
    if (err instanceof LoginError && err.kind === 'failed') throw new JoinError('unauthorized', err.message, 401);
    throw new JoinError('network', err.message);
  }
}

/**
 * How the page will write its MatrixRTC membership once in the call, so
 * Element lists this person: `{userId, deviceId, roomId, focusUrl, transport}`,
 * or null (no device to name, no focus URL from the bridge, or Element did not
 * grant the capability). Only with a plan does the page name its device to the
 * bridge, whose identity is then `{mxid}:{device}`.
 */
async function membershipPlan() {
  const roomId = page.call.room_id;
  const focusUrl = page.call.focus_url;
  if (!focusUrl) {
    console.info('salon: the bridge names no focus URL; no MatrixRTC membership');
    return null;
  }
  if (page.widget) {
    const transport = page.widget.roomId === roomId ? await widgetMembershipTransport(page.widget).catch(() => null) : null;
    if (!transport) {
      console.info('salon: Element did not let the page send its MatrixRTC membership (or the widget URL names no deviceId); Element will not list this person in the call');
      return null;
    }
    return { userId: page.widget.userId, deviceId: page.widget.deviceId, roomId, focusUrl, transport };
  }
  const session = page.session;
  if (!session?.device_id) return null;
  return { userId: session.user_id, deviceId: session.device_id, roomId, focusUrl, transport: clientTransport(session, roomId) };
}

function backToStart() {
  if (page.guest) {
    showPrejoin();
    return;
  }
  if (!page.widget && !storedSession(page.call.homeserver_url)) {
    page.session = null;
    showLogin(null);
  } else {
    showPrejoin();
  }
}

/**
 * A guest's way in: knock as `displayName`, wait in the lobby until a
 * moderator decides, and return the grant once admitted. Denied, or the
 * link revoked meanwhile, throws.
 */
async function lobbyGrant(displayName) {
  const { token } = page.guest;
  const knocked = await knock(token, displayName);
  setState('lobby');
  $('lobby-text').textContent = t('lobby.waiting', { user: page.guest.link.invited_by });
  focusHeading('view-lobby');
  page.lobby = { guest: knocked.guest, number: knocked.number };
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, LOBBY_POLL_MS));
    const state = await knockState(token, knocked.guest, knocked.secret);
    if (state.state === 'admitted') {
      page.lobby.admitted = true;
      return state;
    }
    if (state.state === 'denied') throw new JoinError('denied', '');
  }
}

async function join(event) {
  event.preventDefault();
  if (page.guest && !$('display-name').value.trim()) {
    $('display-name').focus();
    return;
  }
  const displayName = $('display-name').value.trim() || localpart(page.widget?.userId || page.session?.user_id);
  $('display-name').value = displayName;
  sessionStorage.setItem(NAME_KEY, displayName);
  // Made inside the click, so the browser lets it play.
  const audioContext = new AudioContext();
  setState('joining');
  setJoinBusy(true);
  let grant;
  let plan;
  try {
    if (page.guest) {
      grant = await lobbyGrant(displayName);
    } else {
      const openid = await openIdToken();
      plan = await membershipPlan();
      grant = await joinCall(page.callId, openid, displayName, plan?.deviceId);
    }
  } catch (err) {
    setJoinBusy(false);
    audioContext.close();
    let kind = err instanceof JoinError ? err.kind : 'server';
    // A guest's link stopped working (revoked, expired, the call ended).
    if (page.guest && (kind === 'unauthorized' || kind === 'forbidden')) kind = 'guest-link';
    if (kind === 'unauthorized' && !page.widget && !page.guest) logout(page.session);
    showError(kind, err?.detail || err?.message || '', backToStart);
    return;
  }
  const tracks = page.prejoin.takeTracks();
  page.view ||= new CallView();
  const live = new CallSession(
    page.view,
    {
      onTranscription: (on) => setTranscriptionBanner(on),
      onLeft: (reasonKey, vars) => left(reasonKey, vars),
      onModerated: moderated,
      onLobby: lobbyChanged,
      onNotice: notice,
      onControls: () => showControls(),
      onAnnounce: (key, name) => {
        $('announcer').textContent = t(key, { name });
      },
    },
    audioContext,
  );
  page.live = live;
  try {
    await live.connect(grant.url, grant.token, tracks);
  } catch (err) {
    page.live = null;
    audioContext.close();
    setJoinBusy(false);
    showError('media', String(err?.message || err), backToStart);
    return;
  }
  setJoinBusy(false);
  setState('in-call');
  enableModeration(!page.guest && grant.moderator === true);
  if (plan) {
    // In the background: a refused membership never stops the call.
    page.membership = new CallMembership(plan.transport, plan);
    page.membership.join();
  }
  startTimer();
  showControls();
  $('mic-button').focus();
}

// ---- In the call ----

function startTimer() {
  const started = Date.now();
  const timer = $('call-timer');
  timer.hidden = false;
  clearInterval(page.timer);
  const tick = () => {
    const s = Math.floor((Date.now() - started) / 1000);
    const hh = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    timer.textContent = hh > 0 ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
  };
  tick();
  page.timer = setInterval(tick, 1000);
}

function setControl(id, { pressed, off, active, label, icon }) {
  const button = $(id);
  button.setAttribute('aria-pressed', String(pressed));
  button.setAttribute('aria-label', label);
  button.title = label;
  button.classList.toggle('off', !!off);
  button.classList.toggle('active', !!active);
  if (icon) button.querySelector('use').setAttribute('href', icon);
}

function showControls() {
  const state = page.live ? page.live.state() : { mic: false, camera: false, screen: false };
  setControl('mic-button', { pressed: !state.mic, off: !state.mic, label: t(state.mic ? 'call.mic.mute' : 'call.mic.unmute'), icon: state.mic ? '#i-mic' : '#i-mic-off' });
  setControl('cam-button', { pressed: !state.camera, off: !state.camera, label: t(state.camera ? 'call.cam.off' : 'call.cam.on'), icon: state.camera ? '#i-cam' : '#i-cam-off' });
  setControl('screen-button', { pressed: state.screen, active: state.screen, label: t(state.screen ? 'call.screen.stop' : 'call.screen.start') });
  const captions = !$('captions').hidden;
  setControl('captions-button', { pressed: captions, active: captions, label: t(captions ? 'call.captions.hide' : 'call.captions.show') });
}

function wireControls() {
  const act = (fn) => async () => {
    if (!page.live) return;
    try {
      await fn(page.live);
    } finally {
      showControls();
    }
  };
  $('mic-button').addEventListener('click', act((live) => live.toggleMic()));
  $('mute-all-button').addEventListener('click', () => moderatorAct({ action: 'mute_all' }));
  $('lock-button').addEventListener('click', () => moderatorAct({ action: page.locked ? 'unlock' : 'lock' }));
  $('cam-button').addEventListener('click', act((live) => live.toggleCamera()));
  $('screen-button').addEventListener('click', act((live) => live.toggleScreen()));
  $('captions-button').addEventListener('click', () => {
    page.captionsHidden = !page.captionsHidden;
    showCaptionsPanel();
  });
  $('leave-button').addEventListener('click', act((live) => live.leave()));
  $('rejoin-button').addEventListener('click', () => location.reload());
  $('login-form').addEventListener('submit', submitLogin);
  $('prejoin-form').addEventListener('submit', join);
  $('logout-button').addEventListener('click', async () => {
    page.prejoin?.stop();
    page.prejoin = null;
    $('display-name').value = '';
    sessionStorage.removeItem(NAME_KEY);
    await logout(page.session);
    page.session = null;
    showLogin(null);
  });
  // Closing the tab or going elsewhere ends the membership too (a beacon
  // outlives the page; the delayed leave covers a crash).
  const gone = () => page.membership?.leaveOnUnload();
  window.addEventListener('pagehide', gone);
  window.addEventListener('beforeunload', gone);
  document.addEventListener('keydown', (event) => {
    // Ctrl+D / Cmd+D mutes or unmutes, as in most call apps.
    if (page.state === 'in-call' && (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'd') {
      event.preventDefault();
      $('mic-button').click();
    }
  });
}

function left(reasonKey, vars = {}) {
  page.membership?.leave();
  clearInterval(page.timer);
  $('call-timer').hidden = true;
  notices.clear();
  notice('reconnecting', false);
  page.live = null;
  $('left-reason').textContent = t(reasonKey, vars);
  $('left-title').textContent = reasonKey === 'left.body' ? t('left.title') : t('left.title.dropped');
  setState('left');
  focusHeading('view-left');
}

// ---- Start ----

function installTestHooks() {
  window.salonTest = {
    get state() {
      return page.state;
    },
    get transcription() {
      return page.transcription;
    },
    get error() {
      return page.error;
    },
    get language() {
      return currentLanguage();
    },
    get room() {
      return page.live?.room || null;
    },
    get widget() {
      return widgetStatus();
    },
    get membership() {
      return page.membership ? page.membership.status() : null;
    },
    participants: () => (page.live ? page.live.participants() : page.demo ? page.demo.participants() : []),
    remoteAudioLevel: (identity) => (page.live ? page.live.remoteAudioLevel(identity) : 0),
    captions: () => (page.live ? page.live.captions() : page.demo ? page.demo.captions() : []),
    setTranscriptionBanner,
  };
}

async function runDemo(kind) {
  page.call = { transcription: true };
  $('room-name').textContent = currentLanguage() === 'fr' ? 'Comité de pilotage – Transformation' : 'Steering committee – Transformation';
  setTranscriptionBanner(true);
  page.view = new CallView();
  setState('in-call');
  startTimer();
  const demo = await startDemo(page.view, currentLanguage(), kind);
  page.demo = demo;
  page.live = {
    state: demo.state,
    toggleMic: demo.toggleMic,
    toggleCamera: demo.toggleCamera,
    toggleScreen: demo.toggleScreen,
    leave: async () => left('left.body'),
    participants: demo.participants,
    captions: demo.captions,
    remoteAudioLevel: () => 0,
    startAudio: async () => {},
  };
  showControls();
}

async function main() {
  setLanguage(pickLanguage());
  applyStaticText(document);
  document.title = t('app.title');
  installTestHooks();
  wireControls();
  setState('loading');
  const params = new URLSearchParams(location.search);
  const demo = params.get('demo');
  if (demo) {
    await runDemo(demo);
    return;
  }
  // The widget API must listen before the first await: Element asks for
  // capabilities as soon as the iframe has loaded.
  page.widget = widgetContext();
  if (page.widget) startWidget(page.widget);
  const guestToken = guestTokenFromPath(location.pathname);
  if (guestToken) {
    let link;
    try {
      link = await fetchGuestLink(guestToken);
    } catch (err) {
      showError('guest-link', err?.detail || err?.message || '');
      return;
    }
    page.guest = { token: guestToken, link };
    page.callId = link.call_id;
    $('room-name').textContent = link.room_name || '';
    if (link.room_name) document.title = `${link.room_name} – ${t('app.title')}`;
    setTranscriptionBanner(!!link.transcription);
    if (link.name_hint) $('display-name').value = link.name_hint;
    await showPrejoin();
    return;
  }
  page.callId = callIdFromPath(location.pathname);
  if (!page.callId) {
    showError('no-call');
    return;
  }
  try {
    page.call = await fetchCall(page.callId);
  } catch (err) {
    showError(err instanceof JoinError ? err.kind : 'server', err?.detail || '');
    return;
  }
  $('room-name').textContent = page.call.room_name || '';
  if (page.call.room_name) document.title = `${page.call.room_name} – ${t('app.title')}`;
  setTranscriptionBanner(!!page.call.transcription);

  if (page.widget) {
    await showPrejoin();
    return;
  }
  const homeserver = page.call.homeserver_url;
  const loginToken = params.get('loginToken');
  if (loginToken) {
    const clean = new URL(location.href);
    clean.searchParams.delete('loginToken');
    history.replaceState(null, '', clean.toString());
    try {
      page.session = await loginWithToken(homeserver, loginToken);
    } catch (err) {
      await showLogin(loginMessage(err));
      return;
    }
  }
  page.session ||= storedSession(homeserver);
  if (page.session) await showPrejoin();
  else await showLogin(null);
}

main().catch((err) => {
  console.error('salon: the page failed to start', err);
  showError('server', String(err?.message || err));
});
