#!/usr/bin/env python3
"""Command-to-reply latency of the bot, against a running `scripts/demo.sh`.

    ./scripts/demo.sh &        # wait for "Press Ctrl-C"
    python3 bench/bridge/reply-latency.py

alice and bob each send `!visio status` four times (Synapse's default rc_message
burst for a user is ten) and time until the bot's reply is in the room.
"""
import json, time, urllib.request, urllib.parse, statistics, sys
HS="http://127.0.0.1:8008"
def req(method, path, body=None, tok=None):
    r=urllib.request.Request(HS+path, method=method, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type":"application/json", **({"Authorization":"Bearer "+tok} if tok else {})})
    return json.load(urllib.request.urlopen(r))
lat=[]
for user in ["alice","bob"]:
    tok=req("POST","/_matrix/client/v3/login",{"type":"m.login.password","identifier":{"type":"m.id.user","user":user},"password":f"demo-{user}-password"})["access_token"]
    room=urllib.parse.quote(req("GET","/_matrix/client/v3/joined_rooms",tok=tok)["joined_rooms"][0])
    for i in range(4):
        t0=time.time()
        ev=req("PUT",f"/_matrix/client/v3/rooms/{room}/send/m.room.message/lat{user}{i}{int(t0)}",{"msgtype":"m.text","body":"!visio status"},tok)["event_id"]
        while True:
            chunk=req("GET",f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=5",tok=tok)["chunk"]
            if any(e["content"].get("m.relates_to",{}).get("m.in_reply_to",{}).get("event_id")==ev for e in chunk): break
            time.sleep(0.005)
        lat.append(time.time()-t0)
lat.sort()
print(f"command->reply, {len(lat)} x '!visio status' (2 users x 4): p50 {statistics.median(lat)*1000:.0f} ms, p95 {lat[int(len(lat)*0.95)-1]*1000:.0f} ms, max {lat[-1]*1000:.0f} ms")
