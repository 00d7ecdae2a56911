// What generate.mjs needs from livekit-client's own E2EE sources, bundled
// by esbuild from the npm package (node_modules, never committed).
export { FrameCryptor, encryptionEnabledMap } from './node_modules/livekit-client/src/e2ee/worker/FrameCryptor';
export { ParticipantKeyHandler } from './node_modules/livekit-client/src/e2ee/worker/ParticipantKeyHandler';
export { createKeyMaterialFromBuffer, ratchet } from './node_modules/livekit-client/src/e2ee/utils';
export { SALT, KEY_PROVIDER_DEFAULTS } from './node_modules/livekit-client/src/e2ee/constants';
