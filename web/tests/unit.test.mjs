// The call page's plain functions, in node: reading the call id from the path,
// mapping bridge failures to messages, picking the language, sizing the grid,
// reading the transcription flag, and explaining why the call dropped someone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DisconnectReason } from 'livekit-client';
import { callIdFromPath, failureKind } from '../src/bridge.js';
import { pickLanguage, setLanguage, t } from '../src/i18n.js';
import { gridColumns } from '../src/call-view.js';
import { leaveReason, lobbyMessage, moderationFor, transcriptionFlag } from '../src/room.js';
import { localpart, ssoRedirectUrl, userIdentifier } from '../src/matrix.js';

globalThis.document ??= { documentElement: {} };

// The MatrixRTC membership's tests run with these (scripts/test.sh runs this file).
import './membership.test.mjs';

test('the call id comes from /call/<id>, decoded, and nothing else matches', () => {
  assert.equal(callIdFromPath('/call/abc123'), 'abc123');
  assert.equal(callIdFromPath('/call/abc123/'), 'abc123');
  assert.equal(callIdFromPath('/call/a%20b'), 'a b');
  assert.equal(callIdFromPath('/call/'), null);
  assert.equal(callIdFromPath('/calls/abc'), null);
  assert.equal(callIdFromPath('/call/abc/extra'), null);
});

test('each refusal status of the join endpoint has its own message', () => {
  assert.deepEqual([401, 403, 404, 429, 500, 502].map(failureKind), ['unauthorized', 'forbidden', 'not-found', 'rate', 'server', 'server']);
});

test('French unless the browser says another language; ?lang= overrides', () => {
  assert.equal(pickLanguage('', 'fr-FR'), 'fr');
  assert.equal(pickLanguage('', 'fr'), 'fr');
  assert.equal(pickLanguage('', 'en-GB'), 'en');
  assert.equal(pickLanguage('', 'de-DE'), 'en');
  assert.equal(pickLanguage('', ''), 'fr');
  assert.equal(pickLanguage('?lang=fr', 'en-US'), 'fr');
  assert.equal(pickLanguage('?lang=xx', 'en-US'), 'en');
});

test('texts fill their placeholders and fall back to French', () => {
  setLanguage('en');
  assert.equal(t('call.screen.of', { name: 'Karim' }), 'Karim’s screen');
  setLanguage('fr');
  assert.equal(t('call.screen.of', { name: 'Karim' }), 'Écran de Karim');
  assert.equal(t('call.caption.line', { speaker: 'Léa', text: 'Bonjour' }), 'Léa : Bonjour');
  assert.equal(t('no.such.key'), 'no.such.key');
});

test('the grid picks the column count that gives the largest 16:9 tiles', () => {
  assert.equal(gridColumns(1, 1200, 700), 1);
  assert.equal(gridColumns(2, 1200, 700), 2, 'two people side by side on a wide screen');
  assert.equal(gridColumns(2, 400, 800), 1, 'stacked on a phone');
  assert.equal(gridColumns(4, 1200, 700), 2);
  assert.equal(gridColumns(9, 1600, 900), 3);
});

test('the transcription flag is read from JSON metadata, and only from there', () => {
  assert.equal(transcriptionFlag('{"transcription":true}'), true);
  assert.equal(transcriptionFlag('{"transcription":false}'), false);
  assert.equal(transcriptionFlag('{"transcription":"on"}'), true);
  assert.equal(transcriptionFlag('{"transcription":"off"}'), false);
  assert.equal(transcriptionFlag('{"other":1}'), null);
  assert.equal(transcriptionFlag('not json'), null);
  assert.equal(transcriptionFlag(''), null);
  assert.equal(transcriptionFlag(undefined), null);
});

test('the page says why the call dropped someone', () => {
  assert.equal(leaveReason(DisconnectReason.CLIENT_INITIATED), 'left.body');
  assert.equal(leaveReason(DisconnectReason.DUPLICATE_IDENTITY), 'left.duplicate');
  assert.equal(leaveReason(DisconnectReason.PARTICIPANT_REMOVED), 'left.removed');
  assert.equal(leaveReason(DisconnectReason.ROOM_DELETED), 'left.ended');
  assert.equal(leaveReason(DisconnectReason.SIGNAL_CLOSE), 'left.lost');
});

test('login helpers: identifiers, SSO redirect, localparts', () => {
  assert.deepEqual(userIdentifier('  alice '), { type: 'm.id.user', user: 'alice' });
  assert.equal(
    ssoRedirectUrl('https://hs.example/', 'oidc', 'https://salon.example/call/x?room=!r'),
    'https://hs.example/_matrix/client/v3/login/sso/redirect/oidc?redirectUrl=https%3A%2F%2Fsalon.example%2Fcall%2Fx%3Froom%3D!r',
  );
  assert.equal(ssoRedirectUrl('https://hs.example', null, 'https://s/'), 'https://hs.example/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fs%2F');
  assert.equal(localpart('@alice:example.org'), 'alice');
  assert.equal(localpart('bob'), 'bob');
});

test('a moderation message names who acted, for its target only (or everyone but the moderator)', () => {
  const mute = JSON.stringify({ action: 'mute', target: '@bob:hs', by: '@mod:hs', by_name: 'Modeste' });
  assert.deepEqual(moderationFor(mute, '@bob:hs'), { action: 'mute', byName: 'Modeste' });
  // Element Call's and the page's device identities are the same person.
  assert.deepEqual(moderationFor(mute, '@bob:hs:DEVICE'), { action: 'mute', byName: 'Modeste' });
  assert.equal(moderationFor(mute, '@bobby:hs'), null);
  assert.equal(moderationFor(mute, '@carol:hs'), null);
  const all = JSON.stringify({ action: 'mute_all', by: '@mod:hs' });
  assert.deepEqual(moderationFor(all, '@carol:hs'), { action: 'mute_all', byName: '@mod:hs' });
  assert.equal(moderationFor(all, '@mod:hs:DEV'), null);
  for (const bad of ['', 'nope', 'null', '[]', '{"target":"@bob:hs"}']) assert.equal(moderationFor(bad, '@bob:hs'), null, bad);
  setLanguage('en');
  assert.equal(t('call.muted.by', { name: '<b>Eve</b>' }), 'Muted by <b>Eve</b>.');
});

test('a lobby message is read whole or not at all', () => {
  const waiting = JSON.stringify({ call_id: 'c', guest: '@g1:guests.salon.invalid', name: 'Ada <b>', invited_by: '@mod:hs', number: 1, state: 'waiting' });
  assert.deepEqual(lobbyMessage(waiting), { guest: '@g1:guests.salon.invalid', name: 'Ada <b>', invitedBy: '@mod:hs', state: 'waiting' });
  assert.equal(lobbyMessage(JSON.stringify({ guest: 'g', name: 'n', state: 'dancing' })), null);
  for (const bad of ['', '{', 'null', '{"guest":1,"name":"n","state":"waiting"}']) assert.equal(lobbyMessage(bad), null, bad);
});
