// UI smoke test of the call page, in Debian's headless Chromium driven by
// playwright-core, against the stand-in bridge and homeserver of
// stand-in.mjs. It walks the pages a person sees: the login, a wrong
// password, the pre-join check with real (fake-device) media, the join
// request and each refusal, the Element widget route, the in-call demo.
// Screenshots land in tests/screenshots/ to be looked at.
//
// Run: ./build.sh && node --test tests/smoke.mjs   (needs `apt-get install chromium`)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { checkPrerequisites, launchChromium, logIn, openPage, startStandIn, WEB } from './stand-in.mjs';

checkPrerequisites();
const SHOTS = join(WEB, 'tests', 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let browser;
let standIn;
let joins;
let upgrades;
let origin;

before(async () => {
  standIn = await startStandIn();
  ({ joins, upgrades, origin } = standIn);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await standIn?.close();
});

const open = (path, options) => openPage(browser, origin, path, options);

const shot = (page, name) => page.screenshot({ path: join(SHOTS, name) });

// ---- The journeys ----

test('an unknown or ended call says so in French, with no way to join', async () => {
  const { context, page, problems } = await open('/call/gone42');
  await page.waitForSelector('body[data-state="error"]');
  assert.match(await page.textContent('#error-message'), /terminé ou n’existe pas/);
  assert.equal(await page.evaluate(() => window.salonTest.error.kind), 'not-found');
  await shot(page, 'error-not-found.png');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a person with no session is asked to log in, with password and SSO offered', async () => {
  const { context, page, problems } = await open('/call/test123');
  await page.waitForSelector('body[data-state="login"]');
  assert.match(await page.textContent('#login-title'), /Connectez-vous pour rejoindre l’appel/);
  assert.match(await page.textContent('#login-intro'), /test\.local/);
  assert.equal(await page.textContent('#login-sso-buttons button'), 'Se connecter avec ProConnect');
  assert.equal(await page.isVisible('#transcription-banner'), true, 'the call info says transcription is on');
  assert.match(await page.textContent('#room-name'), /Cellule de crise/);
  await shot(page, 'login.png');

  await logIn(page, 'alice', 'wrong');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error-text'), /Identifiant ou mot de passe incorrect/);
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'login');
  await shot(page, 'login-error.png');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the SSO button sends the browser to the homeserver with a way back', async () => {
  const { context, page } = await open('/call/test123');
  await page.waitForSelector('#login-sso-buttons button');
  const [request] = await Promise.all([page.waitForRequest(/login\/sso\/redirect/), page.click('#login-sso-buttons button')]);
  const target = new URL(request.url());
  assert.equal(target.pathname, '/_matrix/client/v3/login/sso/redirect/oidc-proconnect');
  assert.equal(new URL(target.searchParams.get('redirectUrl')).pathname, '/call/test123');
  await context.close();
});

test('after login the pre-join check shows devices, a live preview and a moving mic meter', async () => {
  const { context, page, problems } = await open('/call/test123');
  await logIn(page, 'alice');
  await page.waitForSelector('body[data-state="prejoin"]');
  assert.equal(await page.inputValue('#display-name'), 'Alice Martin', 'the display name comes from the profile');
  assert.match(await page.textContent('#prejoin-identity-text'), /@alice:test\.local/);
  await page.waitForFunction(() => document.querySelector('#preview-video').videoWidth > 0, null, { timeout: 10000 });
  const mics = await page.$$eval('#mic-select option', (options) => options.map((o) => o.textContent));
  const cameras = await page.$$eval('#camera-select option', (options) => options.map((o) => o.textContent));
  assert.ok(mics.length >= 1 && mics.every((label) => label && label !== 'Aucun appareil trouvé'), `microphones: ${mics}`);
  assert.ok(cameras.length >= 1 && cameras.every((label) => label && label !== 'Aucun appareil trouvé'), `cameras: ${cameras}`);
  // Chromium's fake microphone beeps: the meter must move at some point.
  await page.waitForFunction(() => Number(document.querySelector('#mic-meter').getAttribute('aria-valuenow')) > 5, null, { timeout: 10000 });
  assert.deepEqual(await page.evaluate(() => window.salonTest.participants()), []);
  await page.evaluate(() => document.activeElement.blur());
  await shot(page, 'prejoin.png');

  await page.click('#prejoin-cam-toggle');
  await page.waitForSelector('#preview-off:not([hidden])');
  assert.equal(await page.getAttribute('#prejoin-cam-toggle', 'aria-pressed'), 'false');
  await shot(page, 'prejoin-camera-off.png');
  await page.click('#prejoin-cam-toggle');
  await page.waitForFunction(() => document.querySelector('#preview-video').videoWidth > 0);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'prejoin-phone.png');
  assert.deepEqual(problems, []);
  await context.close();
});

test('joining sends the OpenID token, name and device, dials /rtc (two PeerConnections), and a dead media server is explained', async () => {
  const { context, page } = await open('/call/test123');
  await logIn(page, 'alice');
  await page.waitForSelector('body[data-state="prejoin"]');
  await page.fill('#display-name', 'Alice M.');
  const before = joins.length;
  const dialled = upgrades.length;
  await page.click('#join-button');
  await page.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  const sent = joins.slice(before);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].display_name, 'Alice M.');
  assert.equal(sent[0].device_id, 'DEV', 'the session’s device, for the {mxid}:{device} identity of its MatrixRTC membership');
  assert.deepEqual(sent[0].openid_token, { access_token: 'openid-@alice:test.local', token_type: 'Bearer', matrix_server_name: 'test.local', expires_in: 3600 });
  const attempt = new URL(upgrades[dialled], origin);
  assert.equal(attempt.pathname, '/rtc', `livekit-client must use the two-PeerConnection /rtc mode, dialled ${upgrades[dialled]}`);
  assert.equal(attempt.searchParams.get('access_token'), 'not-a-real-jwt');
  assert.equal(await page.evaluate(() => window.salonTest.error.kind), 'media');
  assert.match(await page.textContent('#error-message'), /connexion audio et vidéo/);
  await shot(page, 'error-media.png');
  await page.click('#retry-button');
  await page.waitForSelector('body[data-state="prejoin"]');
  await context.close();
});

for (const [user, kind, words, file] of [
  ['bob', 'forbidden', /pas membre du salon/, 'error-forbidden.png'],
  ['hasty', 'rate', /Trop de tentatives/, 'error-rate.png'],
]) {
  test(`a ${kind} refusal from the bridge is told in plain words`, async () => {
    const { context, page } = await open('/call/test123');
    await logIn(page, user);
    await page.waitForSelector('body[data-state="prejoin"]');
    await page.click('#join-button');
    await page.waitForSelector('body[data-state="error"]');
    assert.equal(await page.evaluate(() => window.salonTest.error.kind), kind);
    assert.match(await page.textContent('#error-message'), words);
    await shot(page, file);
    await context.close();
  });
}

test('a browser in English gets the page in English, and no banner when transcription is off', async () => {
  const { context, page } = await open('/call/quiet', { locale: 'en-GB' });
  await page.waitForSelector('body[data-state="login"]');
  assert.equal(await page.textContent('#login-title'), 'Sign in to join the call');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  assert.equal(await page.isVisible('#transcription-banner'), false);
  await shot(page, 'login-en.png');
  await context.close();
});

/**
 * Builds a real widget host (matrix-widget-api's ClientWidgetApi, the code
 * Element runs) that embeds the call page as carol; `grants` is a JS
 * expression for the capabilities it grants out of `requested`.
 */
async function widgetHost(grants = 'requested') {
  const host = await build({
    stdin: {
      contents: `
        import { ClientWidgetApi, Widget, WidgetDriver, OpenIDRequestState } from 'matrix-widget-api';
        class Driver extends WidgetDriver {
          async validateCapabilities(requested) { window.requested = [...requested]; return ${grants}; }
          askOpenID(observer) {
            observer.update({ state: OpenIDRequestState.Allowed, token: {
              access_token: 'openid-@carol:test.local', token_type: 'Bearer', matrix_server_name: 'test.local', expires_in: 3600 } });
          }
        }
        const iframe = document.createElement('iframe');
        iframe.allow = 'camera; microphone; display-capture; autoplay';
        iframe.style = 'width:100vw;height:100vh;border:0';
        const url = location.origin + '/call/test123?room=!ops:test.local&user=@carol:test.local&deviceId=CAROLDEV&widgetId=w1&parentUrl=' + encodeURIComponent(location.href);
        const widget = new Widget({ id: 'w1', creatorUserId: '@visio:test.local', type: 'm.custom', url, waitForIframeLoad: true });
        iframe.src = url;
        document.body.append(iframe);
        new ClientWidgetApi(widget, iframe, new Driver());
      `,
      resolveDir: WEB,
    },
    bundle: true,
    format: 'iife',
    write: false,
  });
  return host.outputFiles[0].text;
}

test('inside Element, the widget API provides the OpenID token: no login', async () => {
  standIn.widgetHost = await widgetHost();
  const { context, page } = await open('/widget-host');
  const frame = await (await page.waitForSelector('iframe')).contentFrame();
  await frame.waitForSelector('body[data-state="prejoin"]');
  assert.equal(await frame.inputValue('#display-name'), 'carol');
  assert.match(await frame.textContent('#prejoin-identity-text'), /@carol:test\.local/);
  assert.equal(await frame.isVisible('#logout-button'), false);
  // Capabilities are negotiated with the host, not given up on after the page's 5 s wait.
  await frame.waitForFunction(() => window.salonTest.widget !== 'starting');
  assert.equal(await frame.evaluate(() => window.salonTest.widget), 'ready');
  const requested = await page.evaluate(() => window.requested);
  assert.ok(requested.includes('org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#_@carol:test.local_CAROLDEV_m.call'), JSON.stringify(requested));
  assert.ok(requested.includes('org.matrix.msc4157.send.delayed_event') && requested.includes('org.matrix.msc4157.update_delayed_event'), JSON.stringify(requested));
  const before = joins.length;
  await frame.click('#join-button');
  await frame.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  assert.equal(joins[before]?.openid_token?.access_token, 'openid-@carol:test.local');
  // Element granted sending the membership (this host grants everything): the page names its device.
  assert.equal(joins[before]?.device_id, 'CAROLDEV');
  await context.close();
});

test('inside an Element that does not let the page send its membership, it joins without naming its device', async () => {
  standIn.widgetHost = await widgetHost("new Set([...requested].filter((c) => !c.includes('call.member')))");
  const { context, page } = await open('/widget-host');
  const frame = await (await page.waitForSelector('iframe')).contentFrame();
  await frame.waitForSelector('body[data-state="prejoin"]');
  await frame.waitForFunction(() => window.salonTest.widget === 'ready');
  const before = joins.length;
  await frame.click('#join-button');
  await frame.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  assert.equal(joins[before]?.openid_token?.access_token, 'openid-@carol:test.local');
  assert.equal(joins[before]?.device_id, undefined, 'the bare mxid identity, as no membership will match it');
  await context.close();
});

test('the in-call demo shows the grid, speaking mark, captions and banner', async () => {
  const { context, page, problems } = await open('/call/demo?demo=1');
  await page.waitForSelector('body[data-state="in-call"]');
  await page.waitForFunction(() => document.querySelectorAll('#grid .tile').length === 6);
  assert.equal(await page.isVisible('#transcription-banner'), true);
  assert.equal(await page.locator('#grid .tile.speaking').count(), 1);
  assert.match(await page.textContent('#grid .tile.local .name'), /\(vous\)/);
  const captions = await page.evaluate(() => window.salonTest.captions());
  assert.equal(captions.length, 4);
  assert.equal(captions.at(-1).final, false);
  assert.equal(await page.locator('#captions-list .caption.partial').count(), 1);
  await page.waitForFunction(() => [...document.querySelectorAll('#grid video:not([hidden])')].every((v) => v.videoWidth > 0));
  await shot(page, 'in-call.png');

  await page.click('#mic-button');
  assert.equal(await page.getAttribute('#mic-button', 'aria-label'), 'Activer le micro');
  assert.equal(await page.locator('#grid .tile.local .muted-icon').isVisible(), true);
  await page.click('#captions-button');
  assert.equal(await page.isVisible('#captions'), false);
  assert.equal(await page.getAttribute('#captions-button', 'aria-pressed'), 'false');
  await shot(page, 'in-call-no-captions.png');
  await page.click('#captions-button');
  assert.equal(await page.isVisible('#captions'), true);

  // Transcription switched off (by the bridge): no banner, no captions panel, no captions button.
  await page.evaluate(() => window.salonTest.setTranscriptionBanner(false));
  assert.equal(await page.isVisible('#transcription-banner'), false);
  assert.equal(await page.isVisible('#captions'), false);
  assert.equal(await page.isVisible('#captions-button'), false);
  await page.evaluate(() => window.salonTest.setTranscriptionBanner(true));
  assert.equal(await page.isVisible('#transcription-banner'), true);
  assert.equal(await page.isVisible('#captions'), true);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the in-call demo with a screen share, and on a phone', async () => {
  const { context, page } = await open('/call/demo?demo=screen');
  await page.waitForSelector('body[data-state="in-call"]');
  await page.waitForSelector('#grid .tile-screen');
  await page.waitForFunction(() => [...document.querySelectorAll('#grid video:not([hidden])')].every((v) => v.videoWidth > 0));
  await shot(page, 'in-call-screen.png');
  await context.close();

  const phone = await open('/call/demo?demo=1', { viewport: { width: 390, height: 844 } });
  await phone.page.waitForSelector('body[data-state="in-call"]');
  await phone.page.waitForFunction(() => [...document.querySelectorAll('#grid video:not([hidden])')].every((v) => v.videoWidth > 0));
  await shot(phone.page, 'in-call-phone.png');
  await phone.context.close();
});

test('the keyboard reaches every control, with a visible focus ring', async () => {
  const { context, page } = await open('/call/demo?demo=1');
  await page.waitForSelector('body[data-state="in-call"]');
  const reached = [];
  for (let i = 0; i < 12; i += 1) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement.id));
  }
  for (const id of ['mic-button', 'cam-button', 'screen-button', 'captions-button', 'leave-button']) assert.ok(reached.includes(id), `${id} in ${reached}`);
  while ((await page.evaluate(() => document.activeElement.id)) !== 'cam-button') await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, 'solid');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#cam-button', 'aria-pressed'), 'true');
  await shot(page, 'in-call-keyboard.png');
  await context.close();
});
