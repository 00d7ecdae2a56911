// The page's MatrixRTC membership (src/membership.js) in node, against a
// small fake homeserver: the state key and content Element Call expects, the
// delayed leave scheduled before the membership and restarted while in the
// call, the leave, a refusal (403) that leaves the call alone, a homeserver
// without delayed events, and a delayed leave that fired while the tab slept.
//
// Run: node --test tests/membership.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { CALL_MEMBER_EVENT, CallMembership, clientTransport, membershipContent, membershipStateKey, widgetTransport } from '../src/membership.js';

const ALICE = { userId: '@alice:test.local', deviceId: 'DEVA', roomId: '!r:test.local', focusUrl: 'https://salon.test.local/livekit/jwt' };
const STATE_PATH = `/_matrix/client/v3/rooms/${encodeURIComponent(ALICE.roomId)}/state/${CALL_MEMBER_EVENT}/${encodeURIComponent('_@alice:test.local_DEVA_m.call')}`;

/** A fake homeserver: records every request; `delayed` turns on MSC4140; `refuse` answers 403 to state writes. */
async function homeserver({ delayed = true, refuse = false } = {}) {
  const hs = { requests: [], state: undefined, delayedEvents: new Map(), next: 0, gone: new Set() };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString();
    const body = text ? JSON.parse(text) : null;
    const url = new URL(req.url, 'http://x');
    hs.requests.push({ method: req.method, path: url.pathname, query: url.search, body, auth: req.headers.authorization || null });
    const reply = (status, value) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (url.pathname === '/_matrix/client/versions') return reply(200, { versions: ['v1.11'], unstable_features: { 'org.matrix.msc4140': delayed } });
    if (url.pathname === STATE_PATH && req.method === 'PUT') {
      if (req.headers.authorization !== 'Bearer tok-alice') return reply(401, { errcode: 'M_UNKNOWN_TOKEN' });
      const delay = url.searchParams.get('org.matrix.msc4140.delay');
      if (delay) {
        const id = `d${(hs.next += 1)}`;
        hs.delayedEvents.set(id, { content: body, delay: Number(delay) });
        return reply(200, { delay_id: id });
      }
      if (refuse) return reply(403, { errcode: 'M_FORBIDDEN', error: 'You don\u2019t have permission to post that to the room.' });
      hs.state = body;
      return reply(200, { event_id: `$e${hs.requests.length}` });
    }
    const m = /^\/_matrix\/client\/unstable\/org\.matrix\.msc4140\/delayed_events\/([^/]+)$/.exec(url.pathname);
    if (m && req.method === 'POST') {
      const event = hs.delayedEvents.get(m[1]);
      if (!event || hs.gone.has(m[1])) return reply(404, { errcode: 'M_NOT_FOUND' });
      if (body.action === 'send') hs.state = event.content;
      if (body.action !== 'restart') hs.delayedEvents.delete(m[1]);
      return reply(200, {});
    }
    return reply(404, { errcode: 'M_UNRECOGNIZED' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  hs.url = `http://127.0.0.1:${server.address().port}`;
  hs.close = () => new Promise((resolve) => server.close(resolve));
  hs.actions = () => hs.requests.filter((r) => r.path.includes('delayed_events')).map((r) => r.body.action);
  return hs;
}

const quiet = () => {
  const lines = [];
  return { lines, info: (l) => lines.push(`info ${l}`), warn: (l) => lines.push(`warn ${l}`) };
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function membership(hs, log, options = {}) {
  const transport = clientTransport({ homeserver: `${hs.url}/`, access_token: 'tok-alice' }, ALICE.roomId, options);
  return new CallMembership(transport, ALICE, { log, restartMs: 40, ...options });
}

test('the state key and content are Element Call 0.26’s', () => {
  assert.equal(membershipStateKey('@a:localhost', 'DEVA'), '_@a:localhost_DEVA_m.call');
  assert.deepEqual(membershipContent({ userId: '@a:localhost', deviceId: 'DEVA', roomId: '!r:localhost', focusUrl: 'http://localhost:7880/jwt' }), {
    application: 'm.call',
    call_id: '',
    scope: 'm.room',
    device_id: 'DEVA',
    membershipID: '@a:localhost:DEVA',
    expires: 14400000,
    'm.call.intent': 'video',
    focus_active: { type: 'livekit', focus_selection: 'multi_sfu' },
    foci_preferred: [{ type: 'livekit', livekit_alias: '!r:localhost', livekit_service_url: 'http://localhost:7880/jwt' }],
  });
});

test('with delayed events: delayed leave first, then the membership, restarts while in the call, the delayed leave sent on leaving', async () => {
  const hs = await homeserver();
  const log = quiet();
  const m = membership(hs, log);
  await m.join();
  assert.equal(m.state, 'joined', log.lines.join('\n'));
  assert.equal(m.delayed, true);
  const puts = hs.requests.filter((r) => r.method === 'PUT');
  assert.equal(puts.length, 2);
  assert.equal(puts[0].query, '?org.matrix.msc4140.delay=18000');
  assert.deepEqual(puts[0].body, {});
  assert.equal(puts[1].query, '');
  assert.deepEqual(puts[1].body, membershipContent(ALICE));
  assert.deepEqual(hs.state, membershipContent(ALICE));
  await sleep(150);
  assert.ok(hs.actions().filter((a) => a === 'restart').length >= 2, `restarts: ${hs.actions()}`);
  await m.leave();
  assert.equal(m.state, 'left');
  assert.equal(hs.actions().at(-1), 'send');
  assert.deepEqual(hs.state, {}, 'the delayed leave wrote {}');
  const count = hs.requests.length;
  await sleep(100);
  assert.equal(hs.requests.length, count, 'no restarts after leaving');
  await hs.close();
});

test('no power to send the membership (403): the delayed leave is cancelled, the call goes on, the console says why', async () => {
  const hs = await homeserver({ refuse: true });
  const log = quiet();
  const m = membership(hs, log);
  await m.join();
  assert.equal(m.state, 'refused');
  assert.equal(m.status().error.includes('403'), true);
  assert.deepEqual(hs.actions(), ['cancel']);
  assert.equal(hs.state, undefined);
  assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes('no power')), log.lines.join('\n'));
  await m.leave();
  m.leaveOnUnload();
  assert.equal(hs.requests.filter((r) => r.method === 'PUT').length, 2, 'nothing more written');
  await hs.close();
});

test('without delayed events: the membership is written, and {} on leaving', async () => {
  const hs = await homeserver({ delayed: false });
  const log = quiet();
  const m = membership(hs, log);
  await m.join();
  assert.equal(m.state, 'joined');
  assert.equal(m.delayed, false);
  assert.deepEqual(hs.state, membershipContent(ALICE));
  await m.leave();
  assert.deepEqual(hs.state, {});
  assert.deepEqual(hs.actions(), []);
  await hs.close();
});

test('a delayed leave that fired while the tab slept: the membership is written again', async () => {
  const hs = await homeserver();
  const log = quiet();
  const m = membership(hs, log);
  await m.join();
  const first = m.delayId;
  hs.gone.add(first);
  hs.state = {};
  await sleep(150);
  assert.notEqual(m.delayId, first);
  assert.deepEqual(hs.state, membershipContent(ALICE));
  await m.leave();
  assert.deepEqual(hs.state, {});
  await hs.close();
});

test('leaving during the join takes the membership back; the page going away sends a beacon', async () => {
  const hs = await homeserver();
  const early = membership(hs, quiet());
  const joining = early.join();
  await early.leave();
  await joining;
  assert.equal(early.state, 'left');
  await sleep(50);
  assert.ok(hs.state === undefined || Object.keys(hs.state).length === 0, JSON.stringify(hs.state));

  const beacons = [];
  const m = membership(hs, quiet(), { beacon: (url, text) => beacons.push({ url, text }) });
  await m.join();
  m.leaveOnUnload();
  assert.equal(m.state, 'left');
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, `${hs.url}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${m.delayId}`);
  assert.deepEqual(JSON.parse(beacons[0].text), { action: 'send' });
  await hs.close();
});

/** A stand-in for matrix-widget-api's WidgetApi: records calls; `refuse` rejects state writes as Element does for a 403. */
function fakeWidgetApi({ refuse = false } = {}) {
  const calls = [];
  let next = 0;
  return {
    calls,
    async sendStateEvent(type, stateKey, content, roomId, delay) {
      calls.push({ call: 'sendStateEvent', type, stateKey, content, roomId, delay });
      if (delay) return { room_id: '!r', delay_id: `w${(next += 1)}` };
      if (refuse) {
        const err = new Error('You don\u2019t have permission');
        err.data = { matrix_api_error: { http_status: 403, response: { errcode: 'M_FORBIDDEN' } } };
        throw err;
      }
      return { room_id: '!r', event_id: '$e' };
    },
    restartScheduledDelayedEvent: async (id) => calls.push({ call: 'restart', id }),
    sendScheduledDelayedEvent: async (id) => calls.push({ call: 'send', id }),
    cancelScheduledDelayedEvent: async (id) => calls.push({ call: 'cancel', id }),
  };
}

test('inside Element: the same membership through the widget API, and a refusal read from its error', async () => {
  const api = fakeWidgetApi();
  const m = new CallMembership(widgetTransport(api, true), ALICE, { log: quiet(), restartMs: 40 });
  await m.join();
  assert.equal(m.state, 'joined');
  assert.deepEqual(api.calls[0], { call: 'sendStateEvent', type: CALL_MEMBER_EVENT, stateKey: '_@alice:test.local_DEVA_m.call', content: {}, roomId: undefined, delay: 18000 });
  assert.deepEqual(api.calls[1].content, membershipContent(ALICE));
  assert.equal(api.calls[1].delay, undefined);
  await sleep(100);
  assert.ok(api.calls.some((c) => c.call === 'restart' && c.id === 'w1'));
  await m.leave();
  assert.deepEqual(api.calls.at(-1), { call: 'send', id: 'w1' });

  const refused = fakeWidgetApi({ refuse: true });
  const r = new CallMembership(widgetTransport(refused, false), ALICE, { log: quiet() });
  await r.join();
  assert.equal(r.state, 'refused');
  assert.equal(refused.calls.length, 1, 'no delayed leave without the MSC4157 capabilities');
});
