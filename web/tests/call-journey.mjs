// The call page's end-to-end journey, driven by a Rust test against the real
// bridge, its embedded SFU and a real Synapse: one headless Chromium per user
// (each with its own fake microphone playing a WAV file) opens the call link,
// logs in with the page's own password form, passes the pre-join check, joins,
// waits until everyone is in everyone's call, then listens: every page must
// hear every other user at a real level (RMS > 0.01). Each page's MatrixRTC
// membership (`org.matrix.msc3401.call.member`, so Element lists them) is read
// back from the room state; then everyone hangs up and the membership must be
// `{}`. It prints one JSON line on stdout (per user: identity, who they saw,
// how loud each other user was, time to join, the membership) and exits 0; on
// any failure it exits 1 with a plain message on stderr, the page's
// `salonTest.error` and the tail of its console.
//
// Run:
//   SALON_CALL_URL=http://127.0.0.1:PORT/call/ID \
//   SALON_USERS=alice:password1,bob:password2 \
//   SALON_AUDIO_FILES=/tmp/a.wav,/tmp/b.wav \
//   [SALON_TIMEOUT_MS=60000] [SALON_CAPTION_WAIT_MS=30000 SALON_CAPTION_WORDS=budget,figures] \
//   [SALON_SCREENSHOTS=/tmp/shots] [SALON_HOLD=1] \
//   [CHROMIUM=/usr/bin/chromium] \
//   node web/tests/call-journey.mjs

import { existsSync, mkdirSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM, launchChromium } from './stand-in.mjs';

/** The level a page must hear from each other user, as `remoteAudioLevel` reports it (RMS, 0..1). */
const MIN_LEVEL = 0.01;
/** How long each page listens once the other users' microphones are received. */
const SAMPLE_MS = 5000;
/** How long the pre-join check may take to show a moving microphone meter and a camera preview. */
const PREJOIN_MS = 15000;
/** Console lines kept per page for the failure report. */
const CONSOLE_TAIL = 30;
/** How long the page may take to write its membership, and to end it after hanging up. */
const MEMBERSHIP_MS = 15000;
/** The MatrixRTC membership state event the page writes. */
const CALL_MEMBER_EVENT = 'org.matrix.msc3401.call.member';

/** A failure of the journey: which user, at which step, and why. */
class JourneyError extends Error {
  constructor(user, step, message) {
    super(message);
    this.user = user;
    this.step = step;
  }
}

function fail(message) {
  throw new JourneyError(null, 'setup', message);
}

/** Reads and checks the environment; every mistake is told in plain words. */
function readConfig(env) {
  const usage = 'usage: SALON_CALL_URL=http://HOST:PORT/call/ID SALON_USERS=alice:pw1,bob:pw2 SALON_AUDIO_FILES=a.wav,b.wav node web/tests/call-journey.mjs';
  if (!env.SALON_CALL_URL || !env.SALON_USERS || !env.SALON_AUDIO_FILES) fail(`SALON_CALL_URL, SALON_USERS and SALON_AUDIO_FILES must be set\n${usage}`);
  let callUrl;
  try {
    callUrl = new URL(env.SALON_CALL_URL);
  } catch {
    fail(`SALON_CALL_URL is not a URL: ${env.SALON_CALL_URL}`);
  }
  const match = /^\/call\/([^/]+)\/?$/.exec(callUrl.pathname);
  if (!match) fail(`SALON_CALL_URL must be the call link, …/call/{call_id}: ${env.SALON_CALL_URL}`);
  const users = env.SALON_USERS.split(',').map((entry) => {
    // `alice:pw` splits at the first colon; `@alice:server:pw` at the last one.
    const at = entry.startsWith('@') ? entry.lastIndexOf(':') : entry.indexOf(':');
    const login = entry.slice(0, at).trim();
    const password = entry.slice(at + 1);
    if (at <= 0 || !login || !password || (login.startsWith('@') && !login.includes(':'))) {
      fail(`SALON_USERS entries are user:password (comma separated), got "${entry.replace(/:.*/, ':…')}"`);
    }
    return { login, password };
  });
  if (users.length < 2) fail('SALON_USERS needs at least two users: a call needs someone to hear');
  const audioFiles = env.SALON_AUDIO_FILES.split(',').map((file) => file.trim());
  if (audioFiles.length !== users.length) fail(`SALON_AUDIO_FILES has ${audioFiles.length} files for ${users.length} users: one WAV per user`);
  for (const file of audioFiles) checkWav(file);
  const captionWaitMs = Number(env.SALON_CAPTION_WAIT_MS || 0);
  const captionWords = (env.SALON_CAPTION_WORDS || '').split(',').map((word) => word.trim());
  if (!Number.isFinite(captionWaitMs) || captionWaitMs < 0) fail(`SALON_CAPTION_WAIT_MS must be a number of milliseconds, got ${env.SALON_CAPTION_WAIT_MS}`);
  const timeoutMs = Number(env.SALON_TIMEOUT_MS || 60000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) fail(`SALON_TIMEOUT_MS must be a number of milliseconds, got ${env.SALON_TIMEOUT_MS}`);
  if (!existsSync(CHROMIUM)) fail(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (or set CHROMIUM=/path)`);
  const screenshots = env.SALON_SCREENSHOTS || null;
  if (screenshots) mkdirSync(screenshots, { recursive: true });
  const hold = env.SALON_HOLD === '1';
  return { callUrl, callId: decodeURIComponent(match[1]), users, audioFiles, timeoutMs, captionWaitMs, captionWords, screenshots, hold };
}

/** Chromium's fake capture plays a RIFF/WAVE file; anything else is refused up front. */
function checkWav(file) {
  if (!existsSync(file)) fail(`audio file not found: ${file} (make it with e.g. \`espeak-ng -w ${file} "Bonjour à tous"\`)`);
  const header = Buffer.alloc(12);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 12, 0);
  } finally {
    closeSync(fd);
  }
  if (header.toString('latin1', 0, 4) !== 'RIFF' || header.toString('latin1', 8, 12) !== 'WAVE') {
    fail(`${file} is not a WAV file (RIFF/WAVE), which --use-file-for-fake-audio-capture needs`);
  }
}

/** The call's public description, straight from the bridge, so a missing call is told before any browser starts. */
async function fetchCallInfo(config) {
  const url = new URL(`/_salon/v1/calls/${encodeURIComponent(config.callId)}`, config.callUrl);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(10000) });
  } catch (err) {
    fail(`the bridge does not answer GET ${url}: ${err?.cause?.message || err.message}`);
  }
  const text = await response.text();
  if (response.status !== 200) fail(`GET ${url} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
  let call;
  try {
    call = JSON.parse(text);
  } catch {
    fail(`GET ${url} did not answer JSON: ${text.slice(0, 300)}`);
  }
  if (call.state !== 'active') fail(`the call ${config.callId} is not active (state ${JSON.stringify(call.state)})`);
  if (!call.server_name || !call.homeserver_url) fail(`the call info lacks server_name or homeserver_url: ${text.slice(0, 300)}`);
  return call;
}

/** The Matrix user id a login name stands for on `serverName`. */
function expectedIdentity(login, serverName) {
  return login.startsWith('@') ? login : `@${login.toLowerCase()}:${serverName}`;
}

/** One person's side of the journey: their browser, page, console and results. */
class Person {
  constructor(login, password, audioFile, identity) {
    this.login = login;
    this.password = password;
    this.audioFile = audioFile;
    this.identity = identity;
    this.name = identity.replace(/^@/, '').replace(/:.*/, '');
    this.step = 'launch';
    this.browser = null;
    this.page = null;
    this.console = [];
    // `identity` is the Matrix user id; the LiveKit identity is `{mxid}:{device}` once the page names its device.
    this.livekitIdentity = identity;
    this.result = { user: login, identity, device_id: null, livekit_identity: null, display_name: null, participants: [], join_ms: null, ready_ms: null, heard: {}, max_remote_level: 0, membership: null, membership_content: null, membership_after_leave: null, membership_content_after_leave: null };
  }

  note(line) {
    // LiveKit tokens ride in /rtc URLs; they are secrets for five minutes.
    this.console.push(line.replace(/(access_token=)[^&\s'"]+/g, '$1<redacted>').replace(/(Bearer )\S+/g, '$1<redacted>'));
    if (this.console.length > CONSOLE_TAIL) this.console.shift();
  }

  error(step, message) {
    return new JourneyError(this, step, message);
  }
}

/** Waits, within `ms`, until the page's `salonTest.state` is one of `states`, and returns it. */
async function waitForState(person, states, ms) {
  try {
    const handle = await person.page.waitForFunction(
      (wanted) => (wanted.includes(window.salonTest?.state) ? window.salonTest.state : false),
      states,
      { timeout: ms, polling: 100 },
    );
    return await handle.jsonValue();
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const state = await person.page.evaluate(() => window.salonTest?.state ?? 'no salonTest').catch(() => 'unknown');
    throw person.error(person.step, `the page stayed in state "${state}" for ${Math.round(ms / 1000)} s, waiting for ${states.join(' or ')}`);
  }
}

async function screenshot(person, config, label) {
  if (!config.screenshots || !person.page) return;
  await person.page.screenshot({ path: join(config.screenshots, `${person.name}-${label}.png`), timeout: 5000 }).catch(() => {});
}

/** Launches the person's Chromium, opens the call link and logs in with the page's password form. */
async function logIn(person, config, remaining) {
  person.step = 'launch';
  person.browser = await launchChromium([`--use-file-for-fake-audio-capture=${person.audioFile}`]);
  const context = await person.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  person.page = page;
  page.on('console', (message) => {
    // Chromium's "Failed to load resource" names no URL; the response listener below does.
    if (!message.text().startsWith('Failed to load resource')) person.note(`[${message.type()}] ${message.text()}`);
  });
  page.on('pageerror', (err) => person.note(`[pageerror] ${err.message}`));
  page.on('requestfailed', (request) => person.note(`[requestfailed] ${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) person.note(`[http ${response.status()}] ${response.request().method()} ${response.url()}`);
  });

  person.step = 'open';
  const response = await page.goto(config.callUrl.href, { timeout: remaining(), waitUntil: 'domcontentloaded' });
  if (!response || response.status() !== 200) throw person.error('open', `GET ${config.callUrl.href} answered HTTP ${response?.status()}`);
  const first = await waitForState(person, ['login', 'prejoin', 'error'], remaining());
  if (first === 'error') {
    const error = await page.evaluate(() => window.salonTest.error).catch(() => null);
    throw person.error('open', `the page shows an error before any login: ${JSON.stringify(error)}`);
  }
  if (first === 'prejoin') return;

  person.step = 'login';
  await page.fill('#login-user', person.login);
  await page.fill('#login-password', person.password);
  await page.click('#login-submit');
  // The submit button stays disabled while the login runs; enabled again with an alert means it failed.
  let outcome;
  try {
    const handle = await page.waitForFunction(
      () => {
        const state = window.salonTest?.state;
        if (state === 'prejoin' || state === 'error') return state;
        const alert = document.getElementById('login-error');
        if (!document.getElementById('login-submit').disabled && !alert.hidden) return `refused: ${document.getElementById('login-error-text').textContent}`;
        return false;
      },
      null,
      { timeout: remaining(), polling: 100 },
    );
    outcome = await handle.jsonValue();
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    throw person.error('login', 'the login did not finish in time');
  }
  if (outcome === 'error') throw person.error('login', 'the page shows an error after the login');
  if (outcome !== 'prejoin') throw person.error('login', `the homeserver login as "${person.login}" failed, the page says ${JSON.stringify(outcome.slice('refused: '.length))}`);
}

/** The pre-join check: the microphone meter must move (the WAV plays) and the camera preview must show. */
async function preJoin(person, config, remaining) {
  person.step = 'prejoin';
  const page = person.page;
  const budget = Math.min(PREJOIN_MS, remaining());
  try {
    await page.waitForFunction(
      () =>
        document.getElementById('prejoin-identity-text').textContent !== '' &&
        Number(document.getElementById('mic-meter').getAttribute('aria-valuenow')) > 0 &&
        document.getElementById('preview-video').videoWidth > 0,
      null,
      { timeout: budget, polling: 50 },
    );
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const why = await page.evaluate(() => ({
      identity: document.getElementById('prejoin-identity-text').textContent,
      meter: document.getElementById('mic-meter').getAttribute('aria-valuenow'),
      video: document.getElementById('preview-video').videoWidth,
      problem: document.getElementById('prejoin-error').hidden ? null : document.getElementById('prejoin-error-text').textContent,
    }));
    throw person.error(
      'prejoin',
      `the pre-join check never got ready in ${Math.round(budget / 1000)} s: microphone meter ${why.meter} (0 means the fake microphone playing ${person.audioFile} is silent), camera preview width ${why.video}, signed in as "${why.identity}"${why.problem ? `, the page says "${why.problem}"` : ''}`,
    );
  }
  const seen = await page.evaluate(() => document.getElementById('prejoin-identity-text').textContent);
  if (!seen.includes(person.identity)) throw person.error('prejoin', `the pre-join screen names someone else: "${seen}", expected ${person.identity}`);
  person.result.display_name = await page.inputValue('#display-name');
  await screenshot(person, config, 'prejoin');
}

/**
 * Clicks join and waits for the call. The page's own LiveKit identity must be
 * `{mxid}:{device}` (the device of its Matrix session) when the bridge names a
 * focus URL, so that Element Call matches it to the page's membership; the bare
 * Matrix user id otherwise.
 */
async function joinCall(person, config, remaining, call) {
  person.step = 'join';
  const started = Date.now();
  await person.page.click('#join-button');
  const state = await waitForState(person, ['in-call', 'error', 'left'], remaining());
  if (state !== 'in-call') {
    const error = await person.page.evaluate(() => window.salonTest.error).catch(() => null);
    const why = error ? `: ${error.kind}${error.detail ? ` (${error.detail})` : ''}` : '';
    throw person.error('join', `joining ended in state "${state}" instead of the call${why}`);
  }
  person.result.join_ms = Date.now() - started;
  const device = await person.page.evaluate(() => JSON.parse(sessionStorage.getItem('salon.matrix.session') || 'null')?.device_id ?? null);
  person.result.device_id = device;
  const expected = call.focus_url && device ? `${person.identity}:${device}` : person.identity;
  const [local] = await person.page.evaluate(() => window.salonTest.participants());
  if (local !== expected) throw person.error('join', `the call knows this user as ${JSON.stringify(local)}, expected ${expected}`);
  person.livekitIdentity = local;
  person.result.livekit_identity = local;
}

/** The room state's membership event of the page's device, read with the page's own session: content, or null when there is none. */
async function membershipState(person, call) {
  return person.page.evaluate(
    async ({ roomId, type, deviceId }) => {
      const session = JSON.parse(sessionStorage.getItem('salon.matrix.session') || 'null');
      const key = `_${session.user_id}_${deviceId}_m.call`;
      const url = `${session.homeserver.replace(/\/+$/, '')}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/${encodeURIComponent(key)}`;
      const response = await fetch(url, { headers: { Authorization: `Bearer ${session.access_token}` } });
      if (response.status === 404) return null;
      if (!response.ok) throw new Error(`GET the membership state: HTTP ${response.status}`);
      return response.json();
    },
    { roomId: call.room_id, type: CALL_MEMBER_EVENT, deviceId: person.result.device_id },
  );
}

/**
 * Waits until the page has written its MatrixRTC membership (or given up on
 * it: no power in the room is the page's business, the call goes on), and
 * checks what the room state holds: the page's device and the bridge's focus URL.
 */
async function checkMembership(person, call) {
  person.step = 'membership';
  if (!call.focus_url || !person.result.device_id) return;
  let status;
  try {
    const handle = await person.page.waitForFunction(
      () => {
        const m = window.salonTest.membership;
        return m && !['idle', 'joining'].includes(m.state) ? m : false;
      },
      null,
      { timeout: MEMBERSHIP_MS, polling: 100 },
    );
    status = await handle.jsonValue();
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const now = await person.page.evaluate(() => window.salonTest.membership);
    throw person.error('membership', `the page's MatrixRTC membership is still ${JSON.stringify(now)} after ${MEMBERSHIP_MS / 1000} s`);
  }
  person.result.membership = status;
  const expectedKey = `_${person.identity}_${person.result.device_id}_m.call`;
  if (status.state_key !== expectedKey) throw person.error('membership', `the membership's state key is ${status.state_key}, expected ${expectedKey}`);
  if (status.state !== 'joined') return;
  const content = await membershipState(person, call);
  person.result.membership_content = content;
  const focus = content?.foci_preferred?.[0];
  if (content?.device_id !== person.result.device_id || focus?.livekit_service_url !== call.focus_url || focus?.livekit_alias !== call.room_id || content?.focus_active?.type !== 'livekit') {
    throw person.error('membership', `the room's ${CALL_MEMBER_EVENT} ${expectedKey} is ${JSON.stringify(content)}, expected device ${person.result.device_id} and focus ${call.focus_url}`);
  }
}

/** Hangs up with the leave button: the page says it left, and the membership in the room state is `{}` (or gone). */
async function hangUp(person, call) {
  person.step = 'hang-up';
  await person.page.click('#leave-button');
  await waitForState(person, ['left'], MEMBERSHIP_MS);
  if (!person.result.membership) return;
  try {
    const handle = await person.page.waitForFunction(
      () => {
        const m = window.salonTest.membership;
        return m && !['joining', 'joined', 'leaving'].includes(m.state) ? m : false;
      },
      null,
      { timeout: MEMBERSHIP_MS, polling: 100 },
    );
    person.result.membership_after_leave = await handle.jsonValue();
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    throw person.error('hang-up', `the membership did not end in ${MEMBERSHIP_MS / 1000} s: ${JSON.stringify(await person.page.evaluate(() => window.salonTest.membership))}`);
  }
  if (person.result.membership.state !== 'joined') return;
  const content = await membershipState(person, call);
  person.result.membership_content_after_leave = content;
  if (content && Object.keys(content).length > 0) throw person.error('hang-up', `after hanging up, the room's ${CALL_MEMBER_EVENT} is still ${JSON.stringify(content)}, expected {}`);
}

/** With SALON_HOLD=1: says so on stdout (one JSON line) and waits for a line on stdin before anyone hangs up. */
async function hold(people) {
  const users = people.map((person) => ({ user: person.identity, device_id: person.result.device_id, livekit_identity: person.result.livekit_identity, membership: person.result.membership }));
  process.stdout.write(`${JSON.stringify({ holding: true, users })}\n`);
  await new Promise((resolve) => {
    process.stdin.once('data', resolve);
    process.stdin.once('end', resolve);
    process.stdin.resume();
  });
  process.stdin.pause();
}

/** Waits until the page lists everyone and receives every other user's microphone. */
async function seeEveryone(person, everyone, remaining) {
  person.step = 'see-everyone';
  const others = everyone.filter((id) => id !== person.livekitIdentity);
  try {
    await person.page.waitForFunction(
      (ids) => {
        const present = window.salonTest.participants();
        if (!ids.every((id) => present.includes(id))) return false;
        const room = window.salonTest.room;
        return ids.every((id) => room?.remoteParticipants.get(id)?.getTrackPublication('microphone')?.isSubscribed);
      },
      others,
      { timeout: remaining(), polling: 100 },
    );
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const status = await person.page.evaluate(
      (ids) => ({
        state: window.salonTest.state,
        participants: window.salonTest.participants(),
        microphones: Object.fromEntries(ids.map((id) => [id, window.salonTest.room?.remoteParticipants.get(id)?.getTrackPublication('microphone')?.isSubscribed ?? null])),
      }),
      others,
    );
    throw person.error(
      'see-everyone',
      `in state "${status.state}" the page lists ${JSON.stringify(status.participants)} and receives microphones ${JSON.stringify(status.microphones)}, expected all of ${JSON.stringify(everyone)} with their microphones subscribed`,
    );
  }
  person.result.participants = await person.page.evaluate(() => window.salonTest.participants());
}

/** Polls `remoteAudioLevel` of every other user for `ms`: the loudest level, the mean, and the share of samples above MIN_LEVEL. */
async function listen(person, everyone, ms) {
  person.step = 'listen';
  const others = everyone.filter((id) => id !== person.livekitIdentity);
  const heard = await person.page.evaluate(
    async ({ ids, ms, min }) => {
      const stats = Object.fromEntries(ids.map((id) => [id, { max: 0, sum: 0, above: 0 }]));
      let samples = 0;
      const end = Date.now() + ms;
      while (Date.now() < end) {
        for (const id of ids) {
          const level = window.salonTest.remoteAudioLevel(id);
          const s = stats[id];
          s.max = Math.max(s.max, level);
          s.sum += level;
          if (level > min) s.above += 1;
        }
        samples += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return Object.fromEntries(ids.map((id) => [id, { max: stats[id].max, mean: stats[id].sum / samples, active: stats[id].above / samples, samples }]));
    },
    { ids: others, ms, min: MIN_LEVEL },
  );
  const round = (x) => Math.round(x * 10000) / 10000;
  for (const stats of Object.values(heard)) {
    stats.max = round(stats.max);
    stats.mean = round(stats.mean);
    stats.active = round(stats.active);
  }
  person.result.heard = heard;
  person.result.max_remote_level = Math.max(...Object.values(heard).map((s) => s.max));
}

/** Records the transcription banner and the final captions the page shows;
 * with `waitMs`, first waits until it shows a final caption of every other
 * user (holding that user's word of SALON_CAPTION_WORDS, when given). */
async function readCaptions(person, everyone, waitMs, words) {
  person.step = 'captions';
  const others = everyone.filter((id) => id !== person.livekitIdentity);
  const expected = Object.fromEntries(others.map((id) => [id, (words[everyone.indexOf(id)] || '').toLowerCase()]));
  const seen = await person.page.evaluate(
    async ({ ids, ms, expected }) => {
      const finals = () => window.salonTest.captions().filter((c) => c.final && c.text.trim());
      const heard = (id) => finals().some((c) => c.identity === id && c.text.toLowerCase().includes(expected[id]));
      const end = Date.now() + ms;
      while (Date.now() < end && !ids.every(heard)) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return { banner: window.salonTest.transcription, captions: finals().map((c) => ({ identity: c.identity, speaker: c.speaker, text: c.text })) };
    },
    { ids: others, ms: waitMs, expected },
  );
  person.result.transcription_banner = seen.banner;
  person.result.captions = seen.captions;
}

/** `promise`, or `fallback` after `ms` (a hung browser must not hang the report). */
function within(promise, ms, fallback) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

/** What the journey found wrong, with what the page and its console say. */
async function failureReport(err, people, config) {
  const pages = [];
  for (const person of people) {
    const seen = person.page
      ? await within(
          person.page.evaluate(() => ({
            state: window.salonTest?.state ?? null,
            error: window.salonTest?.error ?? null,
            shown: window.salonTest?.state === 'error' ? document.getElementById('error-message')?.textContent : null,
          })),
          5000,
          {},
        )
      : {};
    await screenshot(person, config, 'failure');
    pages.push({ user: person.login, identity: person.identity, step: person.step, state: seen.state ?? null, error: seen.error ?? null, error_message: seen.shown ?? null, console_tail: [...person.console], result: person.result });
  }
  const who = err instanceof JourneyError && err.user ? `${err.user.login} (${err.user.identity})` : null;
  const step = err instanceof JourneyError ? err.step : 'unexpected';
  const lines = [`call-journey: FAILED at ${step}${who ? ` for ${who}` : ''}: ${err.message}`];
  if (!(err instanceof JourneyError) && err.stack) lines.push(err.stack);
  for (const page of pages) {
    if (!page.state && page.console_tail.length === 0) continue;
    lines.push(`--- ${page.user}: step ${page.step}, page state ${page.state}, salonTest.error ${JSON.stringify(page.error)}${page.error_message ? `, the page says "${page.error_message}"` : ''}`);
    lines.push(...(page.console_tail.length ? page.console_tail.map((line) => `    ${line}`) : ['    (no console output)']));
  }
  return { summary: { ok: false, step, user: err?.user?.login ?? null, message: err.message, call_url: config?.callUrl?.href, pages }, text: lines.join('\n') };
}

async function closeAll(people) {
  await Promise.all(
    people.map((person) =>
      person.browser ? within(person.browser.close(), 5000, null) : null,
    ),
  );
}

async function main() {
  const began = Date.now();
  let config = null;
  let people = [];
  let finished = false;
  const finish = async (code, summary, text) => {
    if (finished) return;
    finished = true;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    if (text) process.stderr.write(`${text}\n`);
    await closeAll(people);
    process.exit(code);
  };
  try {
    config = readConfig(process.env);
    // Everything below is bounded by the deadline; the watchdog catches a stuck browser call.
    const deadline = began + config.timeoutMs;
    const remaining = () => Math.max(1000, deadline - Date.now());
    const watchdog = setTimeout(async () => {
      const report = await failureReport(new JourneyError(null, 'watchdog', `the journey took longer than SALON_TIMEOUT_MS=${config.timeoutMs} + ${SAMPLE_MS + 20000} ms`), people, config);
      await finish(1, report.summary, report.text);
    }, config.timeoutMs + SAMPLE_MS + config.captionWaitMs + 20000);

    const call = await fetchCallInfo(config);
    people = config.users.map(({ login, password }, i) => new Person(login, password, config.audioFiles[i], expectedIdentity(login, call.server_name)));
    const mxids = people.map((person) => person.identity);
    if (new Set(mxids).size !== mxids.length) fail(`SALON_USERS names the same user twice: ${mxids.join(', ')}`);

    await Promise.all(
      people.map(async (person) => {
        const opened = Date.now();
        await logIn(person, config, remaining);
        await preJoin(person, config, remaining);
        await joinCall(person, config, remaining, call);
        person.result.ready_ms = Date.now() - opened;
      }),
    );
    // LiveKit identities, known once everyone is in.
    const everyone = people.map((person) => person.livekitIdentity);
    await Promise.all(people.map((person) => seeEveryone(person, everyone, remaining)));
    await Promise.all(people.map((person) => listen(person, everyone, SAMPLE_MS)));
    await Promise.all(people.map((person) => readCaptions(person, everyone, config.captionWaitMs, config.captionWords)));
    await Promise.all(people.map((person) => screenshot(person, config, 'in-call')));
    await Promise.all(people.map((person) => checkMembership(person, call)));
    clearTimeout(watchdog);

    const deaf = [];
    for (const person of people) {
      for (const [id, stats] of Object.entries(person.result.heard)) {
        if (!(stats.max > MIN_LEVEL)) deaf.push(`${person.identity} hears ${id} at most at RMS ${stats.max}`);
      }
    }
    if (deaf.length) {
      const err = new JourneyError(null, 'listen', `a page does not hear the others (needs RMS > ${MIN_LEVEL}): ${deaf.join('; ')}`);
      const report = await failureReport(err, people, config);
      return finish(1, report.summary, report.text);
    }
    if (config.hold) await hold(people);
    const hangUpWatchdog = setTimeout(async () => {
      const report = await failureReport(new JourneyError(null, 'watchdog', `hanging up took longer than ${(2 * MEMBERSHIP_MS + 10000) / 1000} s`), people, config);
      await finish(1, report.summary, report.text);
    }, 2 * MEMBERSHIP_MS + 10000);
    await Promise.all(people.map((person) => hangUp(person, call)));
    clearTimeout(hangUpWatchdog);
    const summary = {
      ok: true,
      call_url: config.callUrl.href,
      room_id: call.room_id,
      homeserver_url: call.homeserver_url,
      min_level: MIN_LEVEL,
      sample_ms: SAMPLE_MS,
      elapsed_ms: Date.now() - began,
      users: people.map((person) => person.result),
    };
    return finish(0, summary, null);
  } catch (err) {
    const report = await failureReport(err, people, config);
    return finish(1, report.summary, report.text);
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    process.stderr.write(`call-journey: stopped by ${signal}\n`);
    process.exit(1);
  });
}

main();
