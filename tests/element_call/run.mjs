// Drives the real Element Call (and Salon's own call page, and bare
// livekit-client pages) in headless Chromium for tests/element_call.rs.
//
// It serves, on a free loopback port:
//   /ec/*      the @element-hq/element-call-embedded dist, untouched (AGPL:
//              installed at test time by scripts/setup-element-call.sh into
//              .cache/element-call, never committed, never served by Salon);
//   /host.html the widget host (host.js, bundled here with esbuild);
//   /pkg/matrix_sdk_crypto_wasm_bg.wasm  matrix-js-sdk's Rust crypto, which the
//              bundled host fetches relative to its own URL (e2ee hosts);
//   /lk.html   a livekit-client 2.22.3 page with default options (lk.js).
// Each person gets their own Chromium (a fake microphone is per browser).
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on
// stdout ({"ok":true,…} or {"ok":false,"error":…}). The first line on stdout
// is {"ok":true,"ready":true,"origin":…}. Commands:
//   {"cmd":"ec_join","hs":URL,"room":ID,"people":[{name,login,password,wav}],"expect_heard":N,"timeout_ms":T,"stagger":BOOL,"e2ee":BOOL}
//                                      e2ee: the hosts have Rust crypto and send encrypted to-device
//   {"cmd":"host_state"}                per Element Call person, the to-device messages its host sent and received
//   {"cmd":"lk_join","people":[{name,url,token,wav}],"expect_heard":N,"timeout_ms":T}
//   {"cmd":"salon_join","person":{name,login,password,wav},"url":CALL_LINK,"expect_heard":N,"timeout_ms":T}
//   {"cmd":"guest_knock","person":{name,display_name,wav},"url":GUEST_LINK,"timeout_ms":T}   a guest, up to the lobby
//   {"cmd":"guest_decided","name":NAME,"expect_heard":N,"timeout_ms":T}                    in the call (hearing N) or an error page
//   {"cmd":"page_click","name":NAME,"selector":CSS,"timeout_ms":T}     clicks once visible
//   {"cmd":"page_text","name":NAME,"selector":CSS,"timeout_ms":T}      {text} once visible, or {text: null}
//   {"cmd":"listen","ms":MS}            per person, what each received audio stream sounded like
//   {"cmd":"hang_up","names":[…]}      Element Call hangs up (widget action), then the browser closes
//   {"cmd":"quit"}
// Diagnostics go to stderr.
//
// Env: SALON_EC_CACHE (default <repo>/.cache/element-call), CHROMIUM (default /usr/bin/chromium).

import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const CACHE = process.env.SALON_EC_CACHE || join(HERE, '..', '..', '.cache', 'element-call');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EC_DIST = join(CACHE, 'node_modules', '@element-hq', 'element-call-embedded', 'dist');
const CRYPTO_WASM = join(CACHE, 'node_modules', '@matrix-org', 'matrix-sdk-crypto-wasm', 'pkg', 'matrix_sdk_crypto_wasm_bg.wasm');
/** An inbound audio level (0..1, linear; 1 is full scale) clearly above silence. */
const HEARD_LEVEL = 0.05;
/** Console lines that tell how Element Call's connection went. */
const TELLING = /livekitRoom\.connect|EncryptionManager|ToDeviceKeyTransport|E2EE|e2ee|has no matching matrix call member|MatrixRTCTransportMissingError|v1 RTC path|ConnectionError|could not establish|\[host\]|\[lk\]|\[pageerror\]|\[requestfailed\]|\[http [45]\d\d\]/;

function stderr(line) {
  process.stderr.write(`run.mjs: ${line}\n`);
}

if (!existsSync(join(EC_DIST, 'index.html'))) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: `Element Call is not installed in ${CACHE}: run scripts/setup-element-call.sh` })}\n`);
  process.exit(1);
}
if (!existsSync(CHROMIUM)) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: `Chromium not found at ${CHROMIUM}: run scripts/setup.sh (or set CHROMIUM)` })}\n`);
  process.exit(1);
}
const require = createRequire(join(CACHE, 'package.json'));
const { chromium } = require('playwright-core');
const esbuild = require('esbuild');

// ---- Bundles and the static server ----

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [join(HERE, entry)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    nodePaths: [join(CACHE, 'node_modules')],
    logLevel: 'warning',
  });
  return result.outputFiles[0].contents;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.woff2': 'font/woff2', '.woff': 'font/woff', '.ogg': 'audio/ogg', '.mp3': 'audio/mpeg', '.webm': 'video/webm',
};
const page = (script) => `<!doctype html><html><head><meta charset="utf-8"><title>Salon test host</title>
<style>html,body{margin:0;height:100%}</style></head><body><script type="module" src="/${script}"></script></body></html>`;

async function startServer() {
  const files = {
    '/host.html': { type: TYPES['.html'], body: page('host.js') },
    '/host.js': { type: TYPES['.js'], body: await bundle('host.js') },
    '/lk.html': { type: TYPES['.html'], body: page('lk.js') },
    '/lk.js': { type: TYPES['.js'], body: await bundle('lk.js') },
    '/pkg/matrix_sdk_crypto_wasm_bg.wasm': { type: TYPES['.wasm'], body: readFileSync(CRYPTO_WASM) },
  };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const known = files[path];
    if (known) {
      res.writeHead(200, { 'Content-Type': known.type, 'Cache-Control': 'no-store' });
      return res.end(known.body);
    }
    if (path.startsWith('/ec/')) {
      const file = normalize(join(EC_DIST, path.slice('/ec/'.length)));
      if (file.startsWith(EC_DIST) && existsSync(file) && statSync(file).isFile()) {
        res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
        return res.end(readFileSync(file));
      }
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

// ---- What every frame gets before its own scripts: media probes ----

// Records every RTCPeerConnection and WebSocket the frame makes, and polls the
// received audio: per inbound audio stream, its level and bytes; `first` is
// when any of them was first heard above HEARD_LEVEL.
const PROBE = `(() => {
  if (window.__salon || !window.RTCPeerConnection) return;
  const probe = (window.__salon = { pcs: [], sockets: [], streams: {}, first: null, firstBytes: null });
  const NativePC = window.RTCPeerConnection;
  function PC(...args) {
    const pc = new NativePC(...args);
    probe.pcs.push(pc);
    pc.addEventListener('track', (e) => {
      if (e.track.kind === 'audio') probe.streams[e.track.id] = { stream: e.streams.map((s) => s.id).join(','), max: 0, level: 0, bytes: 0 };
    });
    return pc;
  }
  PC.prototype = NativePC.prototype;
  Object.setPrototypeOf(PC, NativePC);
  window.RTCPeerConnection = PC;
  const NativeWS = window.WebSocket;
  function WS(url, protocols) {
    const ws = protocols === undefined ? new NativeWS(url) : new NativeWS(url, protocols);
    const entry = { url: String(url).replace(/([?&](access_token|join_request)=)[^&]+/g, '$1…'), opened: false, closed: null };
    probe.sockets.push(entry);
    ws.addEventListener('open', () => { entry.opened = true; });
    ws.addEventListener('close', (e) => { entry.closed = e.code; });
    return ws;
  }
  WS.prototype = NativeWS.prototype;
  Object.setPrototypeOf(WS, NativeWS);
  window.WebSocket = WS;
  probe.inbound = async () => {
    const found = [];
    for (const pc of probe.pcs) {
      if (pc.connectionState === 'closed') continue;
      let report;
      try { report = await pc.getStats(); } catch { continue; }
      report.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') found.push({ id: r.trackIdentifier || String(r.ssrc), level: r.audioLevel || 0, bytes: r.bytesReceived || 0, energy: r.totalAudioEnergy || 0, duration: r.totalSamplesDuration || 0 });
      });
    }
    return found;
  };
  setInterval(async () => {
    if (probe.pcs.length === 0) return;
    for (const s of await probe.inbound()) {
      const known = (probe.streams[s.id] ||= { stream: '', max: 0, level: 0, bytes: 0 });
      known.level = s.level;
      known.bytes = s.bytes;
      known.max = Math.max(known.max, s.level);
      if (s.bytes > 0 && probe.firstBytes === null) probe.firstBytes = Date.now();
      if (s.level > ${HEARD_LEVEL} && !known.heardAt) known.heardAt = Date.now();
      if (s.level > ${HEARD_LEVEL} && probe.first === null) probe.first = Date.now();
    }
  }, 100);
  // Samples every inbound audio stream for ms: loudest and mean level, the
  // share of samples above the heard level, bytes received, and the RMS from
  // the energy counters over the window.
  probe.listen = async (ms) => {
    const start = new Map((await probe.inbound()).map((s) => [s.id, s]));
    const acc = {};
    const end = Date.now() + ms;
    let samples = 0;
    while (Date.now() < end) {
      for (const s of await probe.inbound()) {
        const a = (acc[s.id] ||= { max: 0, sum: 0, above: 0 });
        a.max = Math.max(a.max, s.level);
        a.sum += s.level;
        if (s.level > ${HEARD_LEVEL}) a.above += 1;
      }
      samples += 1;
      await new Promise((r) => setTimeout(r, 100));
    }
    const out = {};
    for (const s of await probe.inbound()) {
      const a = acc[s.id] || { max: 0, sum: 0, above: 0 };
      const before = start.get(s.id) || { bytes: 0, energy: 0, duration: 0 };
      const duration = s.duration - before.duration;
      out[s.id] = {
        stream: probe.streams[s.id]?.stream || '',
        max: a.max, mean: a.sum / Math.max(samples, 1), active: a.above / Math.max(samples, 1),
        bytes: s.bytes - before.bytes,
        rms: duration > 0 ? Math.sqrt(Math.max(0, s.energy - before.energy) / duration) : 0,
      };
    }
    return out;
  };
})();`;

// ---- People ----

const people = new Map();

class Person {
  constructor(name, kind) {
    this.name = name;
    this.kind = kind; // 'ec' | 'lk' | 'salon'
    this.browser = null;
    this.page = null;
    this.console = [];
    this.openedAt = null;
  }

  note(line) {
    const clean = line.replace(/(access_token=|join_request=)[^&\s'"]+/g, '$1…').replace(/(Bearer )\S+/g, '$1…');
    this.console.push(`${new Date().toISOString().slice(11, 23)} ${clean}`);
    if (this.console.length > 20000) this.console.splice(0, 1000);
  }

  telling() {
    return this.console.filter((line) => TELLING.test(line)).slice(-200);
  }

  /** The frame that holds the media: Element Call's iframe, or the page itself. */
  mediaFrame() {
    if (this.kind !== 'ec') return this.page.mainFrame();
    return this.page.frames().find((f) => f.url().includes('/ec/index.html')) || null;
  }

  async launch(wav) {
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
        '--autoplay-policy=no-user-gesture-required',
        `--use-file-for-fake-audio-capture=${wav}`,
      ],
    });
    const context = await this.browser.newContext({ viewport: { width: 1024, height: 700 } });
    await context.grantPermissions(['microphone', 'camera']);
    await context.addInitScript(PROBE);
    this.page = await context.newPage();
    this.page.on('console', (m) => {
      if (!m.text().startsWith('Failed to load resource')) this.note(`[${m.type()}] ${m.text()}`);
    });
    this.page.on('pageerror', (err) => this.note(`[pageerror] ${err.message}`));
    this.page.on('requestfailed', (r) => this.note(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    this.page.on('response', (r) => {
      if (r.status() >= 400) this.note(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
    });
  }

  async probe() {
    const frame = this.mediaFrame();
    if (!frame) return null;
    return frame.evaluate(() => {
      const p = window.__salon;
      return p ? { first: p.first, firstBytes: p.firstBytes, streams: p.streams, sockets: p.sockets } : null;
    }).catch(() => null);
  }

  async close() {
    if (this.browser) await Promise.race([this.browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    this.browser = null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check()` gives a truthy value, polling; throws `what` on timeout. */
async function until(check, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(200);
  }
}

/** Waits until the person hears `expect` distinct audio streams above the level; returns the probe. */
async function hearing(person, expect, timeoutMs) {
  return until(async () => {
    const p = await person.probe();
    const heard = p ? Object.values(p.streams).filter((s) => s.heardAt).length : 0;
    return heard >= expect ? p : null;
  }, timeoutMs, `${person.name} to hear ${expect} other(s) above level ${HEARD_LEVEL}`);
}

function summary(person, p) {
  const heardAt = p ? Object.values(p.streams).map((s) => s.heardAt).filter(Boolean).sort() : [];
  return {
    opened_at: person.openedAt,
    first_bytes_ms: p?.firstBytes ? p.firstBytes - person.openedAt : null,
    first_heard_ms: p?.first ? p.first - person.openedAt : null,
    heard_ms: heardAt.map((t) => t - person.openedAt),
    streams: p?.streams || {},
    sockets: p?.sockets || [],
    console: person.telling(),
  };
}

// ---- Commands ----

/** One Chromium per person of `list` (each has its own fake microphone). */
async function launchAll(list, kind) {
  const joined = list.map((spec) => {
    const person = new Person(spec.name, kind);
    people.set(spec.name, person);
    return { spec, person };
  });
  await Promise.all(joined.map(({ spec, person }) => person.launch(spec.wav)));
  return joined;
}

/**
 * Each person opens Element Call in the room and connects; then each waits to
 * hear `expect_heard` others. With `stagger`, each joins only once the one
 * before is connected, so the later ones join a call already under way (the
 * usual case of pressing the call button).
 */
async function ecJoin({ hs, room, people: list, expect_heard: expect = 1, timeout_ms: timeoutMs = 90000, stagger = false, e2ee = false }, origin) {
  const joined = await launchAll(list, 'ec');
  const out = {};
  const join = async ({ spec, person }) => {
    const url = new URL('/host.html', origin);
    for (const [k, v] of Object.entries({ hs, room, user: spec.login, password: spec.password })) url.searchParams.set(k, v);
    if (spec.intent) url.searchParams.set('intent', spec.intent);
    if (e2ee) url.searchParams.set('e2ee', '1');
    person.openedAt = Date.now();
    await person.page.goto(url.href, { waitUntil: 'domcontentloaded' });
    const host = await until(
      () => person.page.evaluate(() => (['ready', 'error'].includes(window.hostTest?.state) ? { ...window.hostTest } : null)),
      timeoutMs,
      `${spec.name}'s widget host to get ready`,
    );
    if (host.state === 'error') throw new Error(`${spec.name}'s widget host failed: ${host.error}`);
    const readyMs = Date.now() - person.openedAt;
    // Element Call may cancel a connect it superseded itself ("Client initiated disconnect"); any other failure ends the wait.
    const outcome = await until(
      () => person.console.find((l) => /livekitRoom\.connect SUCCESS/.test(l) || (/livekitRoom\.connect FAILED/.test(l) && !/Client initiated disconnect/.test(l))),
      timeoutMs,
      `${spec.name}'s Element Call to connect to LiveKit`,
    );
    if (!/SUCCESS/.test(outcome)) throw new Error(`${spec.name}'s Element Call failed to connect: ${outcome}`);
    // Element Web opens the widget when the call button is pressed, its
    // client already signed in and synced: from then on is what a user waits.
    out[spec.name] = { user_id: host.userId, device_id: host.deviceId, widget_actions: host.widgetActions, widget_opened_ms: host.openedWidgetAt - person.openedAt, ready_ms: readyMs, connected_ms: Date.now() - person.openedAt };
  };
  if (stagger) for (const entry of joined) await join(entry);
  else await Promise.all(joined.map(join));
  await Promise.all(
    joined.map(async ({ spec, person }) => {
      Object.assign(out[spec.name], summary(person, await hearing(person, expect, timeoutMs)));
    }),
  );
  return { people: out };
}

async function lkJoin({ people: list, expect_heard: expect = 1, timeout_ms: timeoutMs = 60000 }, origin) {
  const joined = await launchAll(list, 'lk');
  const out = {};
  await Promise.all(
    joined.map(async ({ spec, person }) => {
      const url = new URL('/lk.html', origin);
      url.searchParams.set('url', spec.url);
      url.searchParams.set('token', spec.token);
      person.openedAt = Date.now();
      await person.page.goto(url.href, { waitUntil: 'domcontentloaded' });
      const state = await until(
        () => person.page.evaluate(() => (['connected', 'error'].includes(window.lkTest?.state) ? { ...window.lkTest } : null)),
        timeoutMs,
        `${spec.name}'s livekit-client to connect`,
      );
      if (state.state === 'error') throw new Error(`${spec.name}'s livekit-client failed: ${state.error}`);
      const p = await hearing(person, expect, timeoutMs);
      out[spec.name] = { identity: state.identity, remotes: await person.page.evaluate(() => window.lkTest.remotes), ...summary(person, p) };
    }),
  );
  return { people: out };
}

/** Salon's own call page, as web/tests/call-journey.mjs drives it: sign in, pre-join, join. */
async function salonJoin({ person: spec, url, expect_heard: expect = 1, timeout_ms: timeoutMs = 90000 }) {
  const person = new Person(spec.name, 'salon');
  people.set(spec.name, person);
  await person.launch(spec.wav);
  const page = person.page;
  const state = (wanted) =>
    until(() => page.evaluate((w) => (w.includes(window.salonTest?.state) ? window.salonTest.state : null), wanted), timeoutMs, `Salon's page to reach ${wanted.join(' or ')}`);
  person.openedAt = Date.now();
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
  if (!response || response.status() !== 200) throw new Error(`GET ${url} answered ${response?.status()}`);
  if ((await state(['login', 'prejoin', 'error'])) === 'login') {
    await page.fill('#login-user', spec.login);
    await page.fill('#login-password', spec.password);
    await page.click('#login-submit');
  }
  if ((await state(['prejoin', 'error'])) === 'error') throw new Error(`Salon's page shows an error: ${JSON.stringify(await page.evaluate(() => window.salonTest.error))}`);
  await page.click('#join-button');
  if ((await state(['in-call', 'error', 'left'])) !== 'in-call') throw new Error(`joining on Salon's page failed: ${JSON.stringify(await page.evaluate(() => window.salonTest.error))}`);
  const p = await hearing(person, expect, timeoutMs);
  return { person: { identity: await page.evaluate(() => window.salonTest.participants()[0]), ...summary(person, p) } };
}

/** A guest on Salon's page (no Matrix account): open the guest link, pick a name, knock; returns once in the lobby. */
async function guestKnock({ person: spec, url, timeout_ms: timeoutMs = 60000 }) {
  const person = new Person(spec.name, 'salon');
  people.set(spec.name, person);
  await person.launch(spec.wav);
  const page = person.page;
  person.openedAt = Date.now();
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
  if (!response || response.status() !== 200) throw new Error(`GET ${url} answered ${response?.status()}`);
  const state = (wanted) =>
    until(() => page.evaluate((w) => (w.includes(window.salonTest?.state) ? window.salonTest.state : null), wanted), timeoutMs, `the guest page to reach ${wanted.join(' or ')}`);
  if ((await state(['prejoin', 'error'])) === 'error') throw new Error(`the guest page shows an error: ${JSON.stringify(await page.evaluate(() => window.salonTest.error))}`);
  await page.fill('#display-name', spec.display_name);
  await page.click('#join-button');
  if ((await state(['lobby', 'error'])) !== 'lobby') throw new Error(`knocking failed: ${JSON.stringify(await page.evaluate(() => window.salonTest.error))}`);
  return { lobby_text: await page.textContent('#lobby-text'), state: 'lobby' };
}

/** The guest waits for a moderator's decision: in the call (then hears `expect_heard` others), or an error page. */
async function guestDecided({ name, expect_heard: expect = 1, timeout_ms: timeoutMs = 60000 }) {
  const person = people.get(name);
  const page = person.page;
  const reached = await until(() => page.evaluate(() => (['in-call', 'error'].includes(window.salonTest?.state) ? window.salonTest.state : null)), timeoutMs, 'a moderator to decide');
  if (reached === 'error') {
    return { state: 'error', error: await page.evaluate(() => window.salonTest.error), message: await page.textContent('#error-message') };
  }
  const p = await hearing(person, expect, timeoutMs);
  return { state: 'in-call', person: { identity: await page.evaluate(() => window.salonTest.participants()[0]), ...summary(person, p) } };
}

/** Clicks `selector` in `name`'s page once it is visible. */
async function pageClick({ name, selector, timeout_ms: timeoutMs = 30000 }) {
  const page = people.get(name).page;
  await page.locator(selector).first().click({ timeout: timeoutMs });
  return { clicked: selector };
}

/** The text of `selector` in `name`'s page, once it is visible (null if it never is). */
async function pageText({ name, selector, timeout_ms: timeoutMs = 30000 }) {
  const page = people.get(name).page;
  const node = page.locator(selector).first();
  try {
    await node.waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    return { text: null };
  }
  return { text: await node.textContent() };
}

async function listen({ ms = 5000 }) {
  const out = {};
  await Promise.all(
    [...people.values()].filter((p) => p.browser).map(async (person) => {
      const frame = person.mediaFrame();
      // Salon's page knows who each sound comes from: its analyser level
      // (RMS) per identity, loudest and mean over the same window.
      const identities =
        person.kind !== 'salon'
          ? null
          : person.page.evaluate(async (t) => {
              const acc = {};
              let samples = 0;
              const end = Date.now() + t;
              while (Date.now() < end) {
                const room = window.salonTest.room;
                for (const id of room ? room.remoteParticipants.keys() : []) {
                  const level = window.salonTest.remoteAudioLevel(id);
                  const a = (acc[id] ||= { max: 0, sum: 0 });
                  a.max = Math.max(a.max, level);
                  a.sum += level;
                }
                samples += 1;
                await new Promise((r) => setTimeout(r, 100));
              }
              return Object.fromEntries(Object.entries(acc).map(([id, a]) => [id, { max: a.max, mean: a.sum / samples }]));
            }, ms);
      const streams = frame ? await frame.evaluate((t) => window.__salon.listen(t), ms) : {};
      const entry = { kind: person.kind, streams, console: person.telling().slice(-30) };
      if (identities) entry.by_identity = await identities;
      out[person.name] = entry;
    }),
  );
  return { people: out };
}

async function hostState() {
  const out = {};
  for (const [name, person] of people) {
    if (person.kind !== 'ec' || !person.browser) continue;
    out[name] = await person.page.evaluate(() => ({ toDeviceSent: window.hostTest.toDeviceSent, toDeviceReceived: window.hostTest.toDeviceReceived })).catch((err) => ({ error: err.message }));
  }
  return { people: out };
}

async function hangUp({ names }) {
  const out = {};
  await Promise.all(
    names.map(async (name) => {
      const person = people.get(name);
      if (!person?.browser) return;
      if (person.kind === 'ec') {
        // As the host's hang-up button: Element Call leaves the session (its
        // membership goes to {}), then the browser goes.
        await person.page.evaluate(() => window.hostTest.hangUp()).catch((err) => person.note(`[host] hang up failed: ${err.message}`));
        await sleep(3000);
      }
      out[name] = { console: person.telling() };
      await person.close();
    }),
  );
  return { people: out };
}

async function main() {
  const { server, origin } = await startServer();
  process.stdout.write(`${JSON.stringify({ ok: true, ready: true, origin })}\n`);
  const lines = createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  const quit = async (code) => {
    await Promise.all([...people.values()].map((p) => p.close()));
    server.close();
    process.exit(code);
  };
  lines.on('line', (line) => {
    queue = queue.then(async () => {
      let command;
      try {
        command = JSON.parse(line);
      } catch {
        process.stdout.write(`${JSON.stringify({ ok: false, error: `not JSON: ${line.slice(0, 100)}` })}\n`);
        return;
      }
      if (command.cmd === 'quit') return quit(0);
      const handlers = { ec_join: ecJoin, lk_join: lkJoin, salon_join: salonJoin, guest_knock: guestKnock, guest_decided: guestDecided, page_click: pageClick, page_text: pageText, listen, hang_up: hangUp, host_state: hostState };
      const handler = handlers[command.cmd];
      let answer;
      try {
        if (!handler) throw new Error(`unknown command ${command.cmd}`);
        answer = { ok: true, ...(await handler(command, origin)) };
      } catch (err) {
        const consoles = {};
        for (const [name, person] of people) {
          consoles[name] = { telling: person.telling(), tail: person.console.slice(-60), probe: person.browser ? await person.probe() : null };
        }
        answer = { ok: false, error: err.message, consoles };
        stderr(`${command.cmd} failed: ${err.stack}`);
      }
      process.stdout.write(`${JSON.stringify(answer)}\n`);
    });
  });
  lines.on('close', () => queue.then(() => quit(0)));
}

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(1));
main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: err.stack })}\n`);
  process.exit(1);
});
