// A stand-in for the bridge and the homeserver, for the call page's tests
// (a contract stand-in: the real bridge and Synapse are the end-to-end test's).
// It serves call.html and dist/ the way the bridge does, the bridge's two JSON
// endpoints, and the homeserver's login, OpenID and profile API. It also holds
// the Chromium launch that every page test uses.

import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Fails with what to install when Chromium or the built page is missing. */
export function checkPrerequisites() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (or set CHROMIUM=/path)`);
  }
  if (!existsSync(join(WEB, 'dist', 'call.js'))) {
    throw new Error('web/dist/call.js is missing: run `web/build.sh` first');
  }
}

/** Debian's Chromium, headless, with fake camera and microphone that need no prompt. */
export function launchChromium(extra = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      ...extra,
    ],
  });
}

const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.html': 'text/html; charset=utf-8' };

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
  res.end(JSON.stringify(body));
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
}

export const CALLS = {
  test123: { call_id: 'test123', room_id: '!ops:test.local', room_name: 'Cellule de crise – Préfecture', state: 'active', transcription: true, focus_url: 'https://salon.test.local/livekit/jwt' },
  quiet: { call_id: 'quiet', room_id: '!q:test.local', room_name: null, state: 'active', transcription: false },
};

/**
 * Starts the stand-in on a free loopback port. `grant(callId, userId, displayName)`
 * answers a successful join with `{url, token}`; by default the "SFU" is this
 * server, which refuses the WebSocket. Users log in with the password `secret`;
 * `@bob` is not a room member (403) and `@hasty` is rate limited (429).
 */
export async function startStandIn({ grant } = {}) {
  const state = { origin: '', joins: [], upgrades: [], widgetHost: '' };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, state.origin).pathname;
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'Authorization, Content-Type', 'Access-Control-Allow-Methods': 'GET, POST' });
      return res.end();
    }
    if (req.method === 'GET' && path.startsWith('/call/')) {
      res.writeHead(200, { 'Content-Type': TYPES['.html'] });
      return res.end(readFileSync(join(WEB, 'call.html')));
    }
    if (req.method === 'GET' && path.startsWith('/assets/')) {
      const file = join(WEB, 'dist', path.slice('/assets/'.length).replace(/\.\.+/g, ''));
      if (!existsSync(file)) return json(res, 404, { errcode: 'M_NOT_FOUND', error: 'no asset' });
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
      return res.end(readFileSync(file));
    }
    if (path === '/rtc/validate') {
      // A down SFU. (Not 404: livekit-client 2.23 then retries /rtc forever.)
      return json(res, 503, { error: 'no SFU here' });
    }
    if (path === '/widget-host') {
      res.writeHead(200, { 'Content-Type': TYPES['.html'] });
      return res.end(`<!doctype html><html><body style="margin:0"><script>${state.widgetHost}</script></body></html>`);
    }
    let m = /^\/_salon\/v1\/calls\/([^/]+)$/.exec(path);
    if (m && req.method === 'GET') {
      const call = CALLS[m[1]];
      if (!call) return json(res, 404, { errcode: 'M_NOT_FOUND', error: 'No such call' });
      return json(res, 200, { ...call, homeserver_url: state.origin, server_name: 'test.local' });
    }
    m = /^\/_salon\/v1\/calls\/([^/]+)\/join$/.exec(path);
    if (m && req.method === 'POST') {
      const request = await body(req);
      state.joins.push(request);
      const token = request.openid_token?.access_token || '';
      if (!CALLS[m[1]]) return json(res, 404, { errcode: 'M_NOT_FOUND', error: 'No such call' });
      if (!token.startsWith('openid-')) return json(res, 401, { errcode: 'M_UNKNOWN_TOKEN', error: 'Bad OpenID token' });
      const userId = token.slice('openid-'.length);
      if (userId === '@bob:test.local') return json(res, 403, { errcode: 'M_FORBIDDEN', error: 'Not a member of the room' });
      if (userId === '@hasty:test.local') return json(res, 429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too many attempts' });
      if (grant) return json(res, 200, grant(m[1], userId, request.display_name));
      return json(res, 200, { url: state.origin.replace('http:', 'ws:'), token: 'not-a-real-jwt' });
    }
    if (path === '/_matrix/client/v3/login' && req.method === 'GET') {
      return json(res, 200, { flows: [{ type: 'm.login.password' }, { type: 'm.login.sso', identity_providers: [{ id: 'oidc-proconnect', name: 'ProConnect' }] }, { type: 'm.login.token' }] });
    }
    if (path === '/_matrix/client/v3/login' && req.method === 'POST') {
      const login = await body(req);
      const user = login.identifier?.user || '';
      if (login.type === 'm.login.password' && login.password === 'secret') {
        const userId = user.startsWith('@') ? user : `@${user}:test.local`;
        return json(res, 200, { user_id: userId, access_token: `tok-${userId}`, device_id: 'DEV' });
      }
      return json(res, 403, { errcode: 'M_FORBIDDEN', error: 'Invalid username or password' });
    }
    m = /^\/_matrix\/client\/v3\/user\/([^/]+)\/openid\/request_token$/.exec(path);
    if (m && req.method === 'POST') {
      const userId = decodeURIComponent(m[1]);
      if (req.headers.authorization !== `Bearer tok-${userId}`) return json(res, 401, { errcode: 'M_UNKNOWN_TOKEN', error: 'bad token' });
      return json(res, 200, { access_token: `openid-${userId}`, token_type: 'Bearer', matrix_server_name: 'test.local', expires_in: 3600 });
    }
    m = /^\/_matrix\/client\/v3\/profile\/([^/]+)\/displayname$/.exec(path);
    if (m) return json(res, 200, decodeURIComponent(m[1]) === '@alice:test.local' ? { displayname: 'Alice Martin' } : {});
    if (path === '/_matrix/client/v3/logout') return json(res, 200, {});
    return json(res, 404, { errcode: 'M_UNRECOGNIZED', error: `${req.method} ${path}` });
  });
  // The signaling WebSocket attempts a page makes to this server, refused after being noted.
  server.on('upgrade', (req, socket) => {
    state.upgrades.push(req.url);
    socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.origin = `http://127.0.0.1:${server.address().port}`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  return state;
}

/** Opens `path` in a new browser context; page errors are collected in `problems`. */
export async function openPage(browser, origin, path, { locale = 'fr-FR', viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ locale, viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(origin + path);
  return { context, page, problems };
}

/** Logs in on the page's login form. */
export async function logIn(page, user, password = 'secret') {
  await page.waitForSelector('body[data-state="login"]');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}
