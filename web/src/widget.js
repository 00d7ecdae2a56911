// The page as an Element/Tchap widget: Element opens the call page in an
// iframe with `?widgetId=…&parentUrl=…` (plus `room` and `user` from the widget
// URL template). The widget API's `get_openid` asks the client for an OpenID
// token, so the user does not log in a second time. With the device id in
// the URL too (`deviceId=$org.matrix.msc3819.matrix_device_id`), the page
// asks to send its MatrixRTC membership (membership.js); Element may say no.

import { EventDirection, MatrixCapabilities, WidgetApi, WidgetEventCapability } from 'matrix-widget-api';
import { CALL_MEMBER_EVENT, membershipStateKey, widgetTransport } from './membership.js';

/** The widget context when the page runs embedded: `{widgetId, parentOrigin, userId, roomId, deviceId, displayName}`, else null. */
export function widgetContext(search = location.search, embedded = window.parent !== window) {
  const params = new URLSearchParams(search);
  const widgetId = params.get('widgetId');
  const parentUrl = params.get('parentUrl');
  if (!embedded || !widgetId || !parentUrl) return null;
  let parentOrigin;
  try {
    parentOrigin = new URL(parentUrl).origin;
  } catch {
    return null;
  }
  return {
    widgetId,
    parentOrigin,
    userId: params.get('user'),
    roomId: params.get('room'),
    deviceId: params.get('deviceId') || params.get('device_id'),
    displayName: params.get('displayName') || params.get('displayname'),
  };
}

let api = null;
let ready = null;
let status = null;

/** How capability negotiation with the hosting client went: null, 'starting', 'ready' or 'timeout'. */
export function widgetStatus() {
  return status;
}

/**
 * Starts talking to the hosting client; resolves when capabilities are
 * negotiated (or after `timeoutMs`). Call it before any `await` of the page:
 * the client asks for capabilities as soon as the iframe has loaded, and a
 * request sent before the page listens is lost.
 */
export function startWidget(context, timeoutMs = 5000) {
  if (ready) return ready;
  api = new WidgetApi(context.widgetId, context.parentOrigin);
  const membership = membershipCapabilities(context);
  if (membership) api.requestCapabilities(membership);
  status = 'starting';
  ready = new Promise((resolve) => {
    const timer = setTimeout(() => {
      status = 'timeout';
      resolve();
    }, timeoutMs);
    api.once('ready', () => {
      clearTimeout(timer);
      status = 'ready';
      resolve();
    });
  });
  api.start();
  return ready;
}

/** Asks the hosting client for an OpenID token (Element may ask the user first). */
export async function widgetOpenIdToken(context) {
  await startWidget(context);
  const credentials = await api.requestOpenIDConnectToken();
  if (!credentials?.access_token) throw new Error('the client gave no OpenID token');
  return {
    access_token: credentials.access_token,
    token_type: credentials.token_type || 'Bearer',
    matrix_server_name: credentials.matrix_server_name,
    expires_in: credentials.expires_in,
  };
}

/** The capabilities the page's MatrixRTC membership needs, or null without a room, user and device to name it. */
function membershipCapabilities(context) {
  if (!context.roomId || !context.userId || !context.deviceId) return null;
  const stateKey = membershipStateKey(context.userId, context.deviceId);
  return [
    WidgetEventCapability.forStateEvent(EventDirection.Send, CALL_MEMBER_EVENT, stateKey).raw,
    MatrixCapabilities.MSC4157SendDelayedEvent,
    MatrixCapabilities.MSC4157UpdateDelayedEvent,
  ];
}

/**
 * How the page writes its membership through Element: a transport for
 * membership.js, or null when Element did not grant sending the state event
 * (or the widget URL names no device). Delayed leaves need both MSC4157
 * capabilities too.
 */
export async function widgetMembershipTransport(context) {
  const wanted = membershipCapabilities(context);
  if (!wanted) return null;
  await startWidget(context);
  if (status !== 'ready' || !api.hasCapability(wanted[0])) return null;
  return widgetTransport(api, api.hasCapability(wanted[1]) && api.hasCapability(wanted[2]));
}
