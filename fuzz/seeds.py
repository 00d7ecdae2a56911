#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Seeds are what a real peer sends: a Synapse-shaped transaction, Element
Call's token requests, a LiveKit webhook, the example config, a Chromium
offer, LiveKit signal frames, an Element Call key event, real libopus
packets. The fuzzer starts from them; they are regenerated with
`python3 fuzz/seeds.py` and kept small.
"""
import base64, hashlib, hmac, json, os, pathlib, struct, time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    if isinstance(value, bool):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def jwt(claims, secret=b"fuzz-secret-fuzz-secret"):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    sig = enc(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


SDP_OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "a=group:BUNDLE 0 1 2", "a=extmap-allow-mixed", "a=msid-semantic: WMS stream",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=ice-options:trickle",
    "a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0",
    "a=setup:actpass", "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendonly", "a=msid:stream TR_audio", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1",
    "a=rtpmap:63 red/48000/2", "a=fmtp:63 111/111", "a=ssrc:1001 cname:x", "a=ssrc:1001 msid:stream TR_audio",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx",
    "a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0",
    "a=setup:actpass", "a=mid:1",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "a=sendonly", "a=msid:stream TR_video", "a=rtcp-mux", "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx",
    "a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0",
    "a=setup:actpass", "a=mid:2", "a=sctp-port:5000", "a=max-message-size:262144", "",
])
CANDIDATE = json.dumps({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0", "sdpMid": "0", "sdpMLineIndex": 0})


def main():
    now = int(time.time())
    # appservice transactions
    events = [
        {"type": "m.room.message", "room_id": "!r:salon.test", "event_id": "$e1", "sender": "@alice:salon.test",
         "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "!visio mute Bob",
                                            "m.mentions": {"user_ids": ["@bob:salon.test"]}}},
        {"type": "m.room.member", "room_id": "!r:salon.test", "event_id": "$e2", "sender": "@bob:salon.test",
         "state_key": "@bob:salon.test", "origin_server_ts": 2, "content": {"membership": "join"}},
        {"type": "m.room.encrypted", "room_id": "!r:salon.test", "event_id": "$e3", "sender": "@bob:salon.test",
         "origin_server_ts": 3, "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s"}},
        {"type": "org.matrix.msc3401.call.member", "room_id": "!r:salon.test", "event_id": "$e4",
         "sender": "@bob:salon.test", "state_key": "_@bob:salon.test_DEVICE_m.call", "origin_server_ts": 4,
         "content": {"application": "m.call", "call_id": "", "scope": "m.room", "device_id": "DEVICE",
                     "expires": 14400000, "focus_active": {"type": "livekit", "focus_selection": "oldest_membership"},
                     "foci_preferred": [{"type": "livekit", "livekit_service_url": "https://salon.test/livekit/jwt",
                                         "livekit_alias": "!r:salon.test"}]}},
    ]
    put("appservice_transaction", "synapse", json.dumps({"events": events, "ephemeral": []}))
    put("appservice_transaction", "empty", json.dumps({"events": []}))
    # chat commands (body, then the mentioned users)
    for i, c in enumerate(["!visio start", "!visio stop", "!visio status", "!visio transcribe on",
                           "!visio settings language=fr transcription=auto", "!visio mute Bob\n@bob:salon.test",
                           "!visio remove @carol:salon.test", "!visio lock", "!visio guest Ada",
                           "!visio admit 1", "!visio deny Ada", "!visio minutes", "!visio help"]):
        put("command", f"c{i}", c)
    # focus API
    openid = {"access_token": "tok", "token_type": "Bearer", "matrix_server_name": "salon.test", "expires_in": 3600}
    put("focus_bodies", "legacy", json.dumps({"room": "!r:salon.test", "openid_token": openid, "device_id": "DEVICE"}))
    put("focus_bodies", "token", json.dumps({"room_id": "!r:salon.test", "slot_id": "m.call#ROOM",
                                             "openid_token": openid, "member": {"id": "m1", "claimed_user_id": "@a:salon.test",
                                                                                "claimed_device_id": "DEVICE"}}))
    # LiveKit webhooks: the Authorization header, a newline, the body
    for name, body in [
        ("joined", {"event": "participant_joined", "room": {"name": "salon-abc"}, "participant": {"identity": "@a:x:D", "name": "Alice"}}),
        ("left", {"event": "participant_left", "room": {"name": "salon-abc"}, "participant": {"identity": "@a:x:D"}}),
        ("finished", {"event": "room_finished", "room": {"name": "salon-abc"}}),
    ]:
        raw = json.dumps(body).encode()
        sha = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        token = jwt({"iss": "APIfuzz", "nbf": now - 10, "exp": now + 3600, "sha256": sha})
        put("livekit_webhook", name, b"Bearer " + token.encode() + b"\n" + raw)
    # config
    put("config", "example", (ROOT / "config.example.toml").read_bytes())
    # E2EE frames: an Opus TOC byte, ciphertext, 12-byte IV, IV length, key index
    put("e2ee_frame", "gcm", bytes([0x78]) + bytes(range(40)) + bytes(12) + bytes([12, 0]))
    put("e2ee_frame", "sif", bytes([0xF8, 0xFF, 0xFE]) + b"LKROCKS")
    put("e2ee_key_event", "keys", json.dumps({
        "type": "io.element.call.encryption_keys", "sender": "@alice:salon.test",
        "content": {"keys": {"index": 0, "key": base64.b64encode(b"k" * 16).decode()},
                    "member": {"id": "m1", "claimed_device_id": "ALICEDEVICE"},
                    "room_id": "!r:salon.test", "session": {"application": "m.call", "call_id": "", "scope": "m.room"},
                    "sent_ts": 1}}))
    # LiveKit signal frames (SignalRequest)
    sd = lambda typ, sdp: field(1, typ) + field(2, sdp) + field(3, 1)
    put("signal_request", "offer", field(1, sd("offer", SDP_OFFER)))
    put("signal_request", "answer", field(2, sd("answer", SDP_OFFER.replace("sendonly", "recvonly"))))
    put("signal_request", "trickle", field(3, field(1, CANDIDATE) + field(2, 1)))
    put("signal_request", "track_setting", field(7, field(1, "TR_video") + field(3, False) + field(4, 1) + field(5, 640) + field(6, 360)))
    put("signal_request", "leave", field(8, field(1, True)))
    put("signal_request", "ping", field(14, 12345))
    put("sdp_text", "offer", b"\x00" + SDP_OFFER.encode() + b"\n--\n" + CANDIDATE.encode())
    put("sdp_text", "answer", b"\x01" + SDP_OFFER.replace("sendonly", "recvonly").replace("actpass", "active").encode())
    # access tokens
    grant = {"roomJoin": True, "room": "room", "canPublish": True, "canSubscribe": True, "canPublishData": True}
    put("access_token", "valid", jwt({"iss": "APIfuzz", "sub": "@a:x:D", "nbf": now - 10, "exp": now + 3600, "video": grant}))
    put("access_token", "none_alg", base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=") + b".e30.")
    # RTP payloads: a VP8 keyframe start, an H.264 IDR in STAP-A and FU-A
    put("rtp_payload", "vp8_key", bytes([0x90, 0x80, 0x00, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + bytes(16))
    put("rtp_payload", "h264_stapa", bytes([0x18, 0x00, 0x04, 0x67, 0x42, 0x00, 0x1F, 0x00, 0x02, 0x65, 0x88]))
    put("rtp_payload", "h264_fua", bytes([0x7C, 0x85, 0x88, 0x84]))
    # Opus packets on the tap: a length byte, then the packet
    frames = json.loads((ROOT / "tests" / "e2ee_frames" / "opus_frames.json").read_text())["frames"]
    put("opus_tap", "tone", b"".join(bytes([len(bytes.fromhex(f))]) + bytes.fromhex(f) for f in frames[:25]))
    put("opus_tap", "dtx", bytes([1, 0xF8]) * 10)


if __name__ == "__main__":
    main()
