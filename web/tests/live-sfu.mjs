// The call page against a running SFU that speaks LiveKit's protocol (Salon's
// own, e.g. `sfu-bench serve`, or any LiveKit server). The stand-in bridge
// mints real LiveKit JWTs with the SFU's key and secret; two Chromium pages log
// in, join, and must see each other: the other's tile with video, the other's
// audio at a real level (Chromium's fake microphone beeps), a mute, a leave.
//
// Run: SALON_SFU_URL=ws://127.0.0.1:PORT SALON_SFU_KEY=… SALON_SFU_SECRET=… node --test tests/live-sfu.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkPrerequisites, launchChromium, logIn, openPage, startStandIn, WEB } from './stand-in.mjs';

const { SALON_SFU_URL: url, SALON_SFU_KEY: key, SALON_SFU_SECRET: secret } = process.env;
if (!url || !key || !secret) {
  throw new Error('set SALON_SFU_URL, SALON_SFU_KEY and SALON_SFU_SECRET to a running SFU (e.g. `sfu-bench serve`, key APIbench)');
}
checkPrerequisites();
const SHOTS = join(WEB, 'tests', 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A LiveKit access token (HS256): this call's room, this user, five minutes. */
function livekitToken(room, identity, name) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: key, sub: identity, name, nbf: now - 5, exp: now + 300, video: { room, roomJoin: true, canPublish: true, canSubscribe: true } };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

let browser;
let standIn;

before(async () => {
  standIn = await startStandIn({ grant: (callId, userId, displayName) => ({ url, token: livekitToken(callId, userId, displayName) }) });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await standIn?.close();
});

async function joinAs(user) {
  const opened = await openPage(browser, standIn.origin, '/call/test123');
  await logIn(opened.page, user);
  await opened.page.waitForSelector('body[data-state="prejoin"]');
  await opened.page.waitForFunction(() => document.querySelector('#preview-video').videoWidth > 0);
  await opened.page.click('#join-button');
  await opened.page.waitForSelector('body[data-state="in-call"]', { timeout: 30000 });
  return opened;
}

/** The loudest level heard from `identity` while polling for up to `ms`. */
async function loudest(page, identity, ms) {
  return page.evaluate(
    async ({ identity, ms }) => {
      let peak = 0;
      const end = Date.now() + ms;
      while (Date.now() < end) {
        peak = Math.max(peak, window.salonTest.remoteAudioLevel(identity));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return peak;
    },
    { identity, ms },
  );
}

test('two people join through the SFU, see and hear each other, mute and leave', async () => {
  const alice = await joinAs('alice');
  const dan = await joinAs('dan');
  for (const [who, other] of [[alice, '@dan:test.local'], [dan, '@alice:test.local']]) {
    await who.page.waitForFunction((id) => window.salonTest.participants().includes(id), other, { timeout: 20000 });
    await who.page.waitForFunction(
      (id) => document.querySelector(`#grid .tile[data-identity="${id}"] video:not([hidden])`)?.videoWidth > 0,
      other,
      { timeout: 20000 },
    );
    const level = await loudest(who.page, other, 5000);
    assert.ok(level > 0.01, `the page hears ${other} at RMS ${level}`);
  }
  assert.deepEqual(await alice.page.evaluate(() => window.salonTest.participants()), ['@alice:test.local', '@dan:test.local']);
  await alice.page.screenshot({ path: join(SHOTS, 'live-in-call.png') });

  await alice.page.click('#mic-button');
  await dan.page.waitForFunction(() => {
    const icon = document.querySelector('#grid .tile[data-identity="@alice:test.local"] .muted-icon');
    return icon && icon.style.display !== 'none';
  }, null, { timeout: 10000 });

  await dan.page.click('#leave-button');
  await dan.page.waitForSelector('body[data-state="left"]');
  await alice.page.waitForFunction(() => window.salonTest.participants().length === 1, null, { timeout: 15000 });
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(dan.problems, []);
  await alice.context.close();
  await dan.context.close();
});
