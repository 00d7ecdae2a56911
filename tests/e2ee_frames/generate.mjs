// Writes fixture.json: Opus frames encrypted by livekit-client 2.22.3's own
// FrameCryptor (bundled from its npm sources with esbuild, run in Node's
// WebCrypto), for bridge/src/media_e2ee/fixture_tests.rs.
//
// Where it sits: the Rust side decrypts these frames with its own HKDF,
// ratchet and AES-GCM and must get the plaintext back; this proves the
// decryption against the encryptor Element Call runs, not against our own.
//
//   cd tests/e2ee_frames && npm ci && node generate.mjs
//   node generate.mjs --check   # exit 1 if fixture.json is not what it writes
//
// The output is the same on every run (fixed keys, IVs and inputs), so
// --check proves the committed fixture still comes from this livekit-client.
//
// Input: opus_frames.json (real libopus packets, written by the ignored
// Rust test media_e2ee::fixture_tests::write_opus_frames).
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';

const here = new URL('.', import.meta.url).pathname;

// The cryptor expects a browser worker: WebCrypto as `crypto`, and the
// RTCEncodedAudioFrame class its ratchet log line names.
globalThis.crypto ??= webcrypto;
globalThis.RTCEncodedAudioFrame ??= class RTCEncodedAudioFrame {};
// makeIV starts each SSRC's send counter at Math.random() * 0xffff: fixed,
// so the fixture is the same on every run.
Math.random = () => 0.25;

const bundled = await build({
  entryPoints: [here + 'entry.ts'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  logLevel: 'warning',
});
const lk = await import(
  'data:text/javascript;base64,' + Buffer.from(bundled.outputFiles[0].text).toString('base64')
);
const version = JSON.parse(
  readFileSync(here + 'node_modules/livekit-client/package.json', 'utf8'),
).version;

// Element Call's MatrixKeyProvider: ratchetWindowSize 10, keyringSize 256.
const options = { ...lk.KEY_PROVIDER_DEFAULTS, ratchetWindowSize: 10, keyringSize: 256 };
const identity = '@alice:salon.test:ALICEDEV';
const hex = (buf) => Buffer.from(buf).toString('hex');
const b64 = (buf) => Buffer.from(buf).toString('base64');

const opus = JSON.parse(readFileSync(here + 'opus_frames.json', 'utf8')).frames.map(
  (h) => new Uint8Array(Buffer.from(h, 'hex')),
);

// Raw keys as Element Call sends them: 16 bytes each.
const rawKeys = [
  { index: 0, bytes: Uint8Array.from({ length: 16 }, (_, i) => i) },
  { index: 1, bytes: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i) },
  { index: 255, bytes: Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 0xff) },
];

const keys = [];
for (const { index, bytes } of rawKeys) {
  const material = await lk.createKeyMaterialFromBuffer(bytes);
  const ratcheted = await lk.ratchet(material, lk.SALT);
  // deriveKeys' parameters through WebCrypto's HKDF, as bits, for the
  // derivation check (deriveKeys itself makes a non-extractable key)
  const frameKey = await crypto.subtle.deriveBits(
    { name: 'HKDF', salt: new TextEncoder().encode(lk.SALT), hash: 'SHA-256', info: new ArrayBuffer(128) },
    material,
    128,
  );
  keys.push({ index, key: b64(bytes), ratcheted: hex(ratcheted), frame_key: hex(frameKey) });
}

const sender = new lk.ParticipantKeyHandler(identity, options);
const cryptor = new lk.FrameCryptor({ keys: sender, participantIdentity: identity, keyProviderOptions: options });
lk.encryptionEnabledMap.set(identity, true);

const ssrc = 0x1234abcd;
let timestamp = 960 * 1000;
let next = 0;
async function encrypt() {
  const plain = opus[next++ % opus.length];
  // an RTCEncodedAudioFrame: no `type`, so the cryptor treats it as audio
  const frame = {
    data: plain.slice().buffer,
    timestamp,
    getMetadata: () => ({ synchronizationSource: ssrc }),
  };
  timestamp += 960;
  let out;
  await cryptor.encodeFunction(frame, { enqueue: (f) => (out = f) });
  if (!out) throw new Error('the cryptor dropped a frame');
  return { plaintext: hex(plain), encrypted: hex(new Uint8Array(out.data)) };
}

const frames = [];
const material = async (index) => lk.createKeyMaterialFromBuffer(rawKeys.find((k) => k.index === index).bytes);
await sender.setKey(await material(0), 0);
for (let i = 0; i < 3; i++) frames.push({ name: `index0-${i}`, key_index: 0, ...(await encrypt()) });
// a rotation: Element Call sends a new key at the next index
await sender.setKey(await material(1), 1);
for (let i = 0; i < 3; i++) frames.push({ name: `rotated-${i}`, key_index: 1, ...(await encrypt()) });
// a sender ratchet of the current key (index 1); receivers keep the raw key
await sender.ratchetKey();
for (let i = 0; i < 2; i++) frames.push({ name: `ratcheted-${i}`, key_index: 1, ...(await encrypt()) });
// and once more: two ratchets ahead of the raw key. livekit-client's
// receiver follows it only after decrypting a one-ratchet frame (its window
// ratchets the slot's key once per try); ours follows it directly.
await sender.ratchetKey();
frames.push({ name: 'ratcheted2-0', key_index: 1, ...(await encrypt()) });
// the last index, where key indices wrap
await sender.setKey(await material(255), 255);
for (let i = 0; i < 2; i++) frames.push({ name: `index255-${i}`, key_index: 255, ...(await encrypt()) });

// Sanity: livekit-client's own receiver, given the raw keys, decrypts them.
const receiverKeys = new lk.ParticipantKeyHandler(identity, options);
for (const { index } of rawKeys) await receiverKeys.setKey(await material(index), index);
const receiver = new lk.FrameCryptor({ keys: receiverKeys, participantIdentity: identity, keyProviderOptions: options });
for (const f of frames) {
  let out;
  const data = new Uint8Array(Buffer.from(f.encrypted, 'hex'));
  await receiver.decodeFunction({ data: data.buffer, timestamp: 0, getMetadata: () => ({}) }, { enqueue: (x) => (out = x) });
  if (!out || hex(new Uint8Array(out.data)) !== f.plaintext) {
    throw new Error(`livekit-client's own receiver failed on ${f.name}`);
  }
}

const fixture = {
  about:
    'Opus frames encrypted by livekit-client ' + version + "'s FrameCryptor (Node " +
    process.version + ', WebCrypto), with Element Call\'s key-provider options; written by ' +
    'tests/e2ee_frames/generate.mjs. Test data, not livekit-client code.',
  livekit_client: version,
  identity,
  key_provider_options: options,
  keys,
  frames,
};
const text = JSON.stringify(fixture, null, 1) + '\n';
if (process.argv.includes('--check')) {
  if (readFileSync(here + 'fixture.json', 'utf8') !== text) {
    console.error('fixture.json differs from what livekit-client ' + version + ' writes now');
    process.exit(1);
  }
  console.log(`fixture.json matches livekit-client ${version}: ${frames.length} frames`);
} else {
  writeFileSync(here + 'fixture.json', text);
  console.log(`wrote fixture.json: ${frames.length} frames, ${keys.length} keys`);
}
