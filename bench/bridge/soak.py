#!/usr/bin/env python3
"""A soak of the whole bridge (issue #18), against a running `scripts/demo.sh`.

    ./scripts/demo.sh &        # wait for "Press Ctrl-C"
    python3 bench/bridge/soak.py [--seconds 3600] [--participants 20] [--speakers 4] [--every 60]

N participants (alice, bob, then soak01, soak02...: registered with the demo's
shared secret and joined to the demo room when they are not yet) join the demo
room's call with LiveKit's Python SDK, through the join API as the call page
does, each from its own client address (X-Forwarded-For: the bridge counts join
attempts per address), one at a time, each once everyone hears everyone. They
are spread over SDK processes (--per-process each; this script run as
`--worker`), as one SDK process with 20 rooms stalls long enough in a join's
renegotiations for the SFU's 20 s ping timeout. Each publishes a microphone
track (Opus, DTX on, as livekit-client does). The first --speakers of them take
turns saying espeak-ng sentences (each its own English voice and sentences) at
real-time pace, --pause seconds apart, so that Whisper on a 2-core machine
keeps up; the others send silence. Everyone keeps the speakers' tracks and
unsubscribes from the silent ones (which works whether or not the server
honours auto_subscribe), as
decoding all 380 would take more than a 2-core machine has; --subscribe-all
keeps them all. The call is started and transcription turned on first if they
are not.

Every --every seconds it samples the bridge's /metrics (on the appservice
address, `[appservice] bind` in the demo's config): resident memory, open file
descriptors, live tokio tasks, transcript segments, dropped finals and caption
latency; and the transcript notices the room got since the last sample (alice's
/sync), the sentences said, how many participants are connected (as their SDK
sees it, and in the room's `org.salon.call` state), and the bridge's and this
client's CPU. At the end the participants leave, and it prints the table and
the verdict against the issue's targets:
  - RSS growth from minute 5 (or 1/12 of a shorter run) to the end < 5 %;
  - open fds and tokio tasks at the end no more than at that minute plus
    TOLERANCE (2: the connections that come and go, see bench/bridge/README.md);
  (each level is the median of LEVEL_OF samples: that minute's and the next
  ones, the last ones)
  - every participant connected at every sample, none dropped.
It writes the report to PREFIX.txt, a plot of RSS, fds and tasks to PREFIX.svg
and the SDK's log to PREFIX.log (--out; default
bench/bridge/results/DATE-soak-SECONDSs). Exit 1
when a target is missed or a participant dropped. Ctrl-C ends the run early:
the participants leave and what was sampled is reported.
  SALON_DEMO_HS_PORT   the demo's homeserver port (default 8008)
  SALON_DEMO_DIR       the demo's config and data (default .salon-demo)
  SALON_PY_VENV        the SDK's venv (default .venv/livekit)
  SALON_SYNAPSE_VENV   Synapse's venv, for register_new_matrix_user (default .venv/synapse)
"""
import argparse, asyncio, datetime, json, logging, math, os, re, signal, subprocess, sys, tempfile, threading, time, tomllib, urllib.error, urllib.parse, urllib.request

import demo_call
from demo_call import HS, RATE, ROOT, User, Voice, connect, demo_room, live_call, req, rtc, speech, watch_notices

DEMO = os.environ.get("SALON_DEMO_DIR", os.path.join(ROOT, ".salon-demo"))
REGISTER = os.path.join(os.environ.get("SALON_SYNAPSE_VENV", os.path.join(ROOT, ".venv/synapse")), "bin/register_new_matrix_user")
GROWTH_FROM_S = 300.0  # minute 5 of an hour; 1/12 of a shorter run
GROWTH_TARGET_PCT = 5.0
TOLERANCE = 2  # fds and tasks: see bench/bridge/README.md
LEVEL_OF = 3  # samples whose median is a level at the start and at the end
AFTER_LEAVE_S = 10.0  # the sample after the participants left
PER_PROCESS = 5  # participants per SDK process (see bench/bridge/README.md)
SETTLE_S = 30.0  # for a join to be heard by all
STATUS_S = 0.5  # how often a worker tells its participants' status
JOIN_S = 60.0  # for a worker to answer `join` or `say`
LEAVE_S = 20.0  # for a worker to leave and exit
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbcwmd"]
SENTENCES = demo_call.SENTENCES + [
    "The bus to the airport leaves every twenty minutes.",
    "Can you share the slides after the presentation?",
    "The printer on the second floor is out of paper again.",
    "Let us move the training session to Thursday afternoon.",
    "The survey shows that most parents want longer opening hours.",
    "I have booked a room for ten people at the town hall.",
    "The bakery next to the station closes at six.",
    "We need a volunteer to write the minutes of this meeting.",
    "The river was too high for the boats last weekend.",
    "Remember to lock the door when you leave the office.",
    "The museum will show paintings from the old harbour.",
    "Our new colleague starts on the first of the month.",
    "The heating in the gym has been repaired.",
    "Please send me your comments before the end of the week.",
]


def demo_config():
    """Where the bridge serves /metrics, and the homeserver's shared secret."""
    with open(os.path.join(DEMO, "config.toml"), "rb") as f:
        bind = tomllib.load(f)["appservice"]["bind"]
    with open(os.path.join(DEMO, "homeserver.yaml")) as f:
        secret = re.search(r'^registration_shared_secret:\s*"?([^"\n]+)"?', f.read(), re.M).group(1)
    return f"http://{bind}/metrics", secret


def member(alice, room_id, name, secret):
    """`name` logged in (registered first if need be), joined to the demo room."""
    try:
        user = User(name)
    except urllib.error.HTTPError as e:
        if e.code != 403:
            raise
        subprocess.run([REGISTER, "-k", secret, "-u", name, "-p", f"demo-{name}-password", "--no-admin", HS], check=True, capture_output=True)
        user = User(name)
    if room_id not in req("GET", "/_matrix/client/v3/joined_rooms", tok=user.tok)["joined_rooms"]:
        room = urllib.parse.quote(room_id)
        req("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": user.mxid}, alice.tok)
        req("POST", f"/_matrix/client/v3/join/{room}", {}, user.tok)
    return user


def bridge_pid():
    """The demo's `salon run`, found by its config path (for its CPU time); None if not found."""
    config = os.path.realpath(os.path.join(DEMO, "config.toml"))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"run" in args and any(a and os.path.realpath(a.decode(errors="replace")) == config for a in args[1:]):
            return int(pid)
    return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError):
        return None


def scrape(url):
    """The bridge's /metrics as {name (with labels): value}; None if it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class Participant:
    """One participant, in a worker process."""

    def __init__(self, i, name, listen, emit):
        """`listen`: the identities whose tracks it keeps (None: everyone's)."""
        self.i, self.name, self.listen, self.emit = i, name, listen, emit
        self.room = self.voice = self.player = None
        self.lines, self.leaving = [], False

    async def join(self, grant, texts, voice):
        if texts:
            with tempfile.TemporaryDirectory() as tmp:
                self.lines = [speech(t, tmp, voice) for t in texts]
        self.room = await connect(grant)
        for what in ("disconnected", "reconnecting", "reconnected"):
            self.room.on(what, lambda *args, what=what: self.event(what, args))
        if self.listen is not None:
            # The SFU sends every track to everyone: drop the silent ones.
            self.room.on("track_subscribed", lambda track, publication, participant: self.keep(participant, publication))
            for them in self.room.remote_participants.values():
                for publication in them.track_publications.values():
                    self.keep(them, publication)
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        await self.room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=True))
        # 100 ms frames, 200 ms ahead: at 10 ms frames the Python side of 20
        # sources would take much of a core of a 2-core machine.
        self.voice = Voice(source, frame=RATE // 10, ahead=0.2)
        self.player = asyncio.ensure_future(self.voice.run())

    def keep(self, participant, publication):
        if participant.identity not in self.listen and publication.track is not None:
            publication.set_subscribed(False)

    def event(self, what, args):
        if not self.leaving:
            self.emit({"op": "event", "i": self.i, "what": what, "detail": " ".join(map(str, args))})

    def status(self):
        """Connected, and how many others it sees publish (and hears, their
        tracks subscribed, if it listens to them)."""
        if self.room is None:
            return {"connected": False, "hears": 0}
        hears = sum(
            bool(p.track_publications) and (self.listen is not None and p.identity not in self.listen or all(t.track is not None for t in p.track_publications.values()))
            for p in self.room.remote_participants.values()
        )
        return {"connected": self.room.isconnected(), "hears": hears}

    async def leave(self):
        self.leaving = True
        if self.player:
            self.player.cancel()
        if self.room:
            await self.room.disconnect()


async def worker():
    """`soak.py --worker`: hosts participants for the main process. Commands
    come on stdin, replies, events and a status each STATUS_S on stdout, one
    JSON object a line. The end of stdin (the main process gone) or `leave`:
    the participants leave and it exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process: it says `leave`
    loop = asyncio.get_running_loop()
    commands = asyncio.Queue()

    def read():
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
            loop.call_soon_threadsafe(commands.put_nowait, {"op": "leave"})
        except RuntimeError:
            pass  # the loop is closed: the worker is exiting

    def emit(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    threading.Thread(target=read, daemon=True).start()
    participants = {}

    async def beat():
        while True:
            emit({"op": "status", "rooms": {i: p.status() for i, p in participants.items()}})
            await asyncio.sleep(STATUS_S)

    beating = asyncio.ensure_future(beat())
    while (cmd := await commands.get())["op"] != "leave":
        if cmd["op"] == "join":
            p = participants[cmd["i"]] = Participant(cmd["i"], cmd["name"], cmd["listen"], emit)
            try:
                await p.join(cmd["grant"], cmd["texts"], cmd["voice"])
                emit({"op": "joined", "i": p.i})
            except Exception as e:  # the main process reports it
                emit({"op": "joined", "i": p.i, "error": repr(e)})
        elif cmd["op"] == "say":
            p = participants[cmd["i"]]
            p.voice.say(p.lines[cmd["k"] % len(p.lines)]).add_done_callback(lambda f, i=p.i: emit({"op": "said", "i": i, "ended": f.result()}))
    beating.cancel()
    await asyncio.gather(*(p.leave() for p in participants.values()), return_exceptions=True)
    emit({"op": "left"})
    # The participants have left: skip the interpreter's teardown, where the
    # SDK's FFI can panic dropping its handles (seen with 1.2.1).
    logging.shutdown()
    os._exit(0)


class Worker:
    """A worker process, seen from the main process: its participants' last
    status, and replies awaited."""

    def __init__(self, proc, number, on_event):
        self.proc, self.number, self.on_event = proc, number, on_event
        self.status, self.waiting, self.alive, self.closing = {}, {}, True, False
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            op = msg["op"]
            if op == "status":
                self.status = {int(i): s for i, s in msg["rooms"].items()}
            elif op == "event":
                self.on_event(msg)
            elif (op, msg.get("i")) in self.waiting:
                self.waiting.pop((op, msg.get("i"))).set_result(msg)
        self.alive = False
        for i in self.status if not self.closing else ():
            self.on_event({"op": "event", "i": i, "what": "disconnected", "detail": f"worker {self.number} exited ({await self.proc.wait()})"})
        for fut in self.waiting.values():
            fut.cancel()

    async def request(self, msg, reply, timeout):
        fut = self.waiting[reply] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(fut, timeout)

    def connected(self, i):
        return self.alive and self.status.get(i, {}).get("connected", False)

    def hears(self, i):
        return self.status.get(i, {}).get("hears", 0) if self.alive else 0

    async def close(self):
        """Says `leave` and waits for the worker to exit (killed after LEAVE_S)."""
        self.closing = True
        try:
            if self.alive:
                await self.request({"op": "leave"}, ("left", None), LEAVE_S)
        except (asyncio.TimeoutError, asyncio.CancelledError, OSError):
            pass
        try:
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), LEAVE_S)
        except (asyncio.TimeoutError, OSError):
            self.proc.kill()
            await self.proc.wait()


class Call:
    """The participants, spread over worker processes, as the main process drives them."""

    def __init__(self, users, workers, listen):
        self.users, self.workers, self.listen = users, workers, listen
        self.dropped = self.reconnects = 0

    def worker(self, i):
        return self.workers[i % len(self.workers)]

    def on_event(self, msg):
        what, name = msg["what"], self.users[msg["i"]].name
        self.dropped += what == "disconnected"
        self.reconnects += what == "reconnecting"
        print(f"  {name} {what} {msg.get('detail', '')}".rstrip(), flush=True)

    def connected(self):
        return sum(self.worker(i).connected(i) for i in range(len(self.users)))

    async def join(self, i, call_url, texts, voice):
        # 192.0.2.0/24 (TEST-NET-1): one client address each, as behind a
        # proxy (the bridge counts join attempts per address).
        grant = await asyncio.to_thread(self.users[i].join_grant, call_url, f"192.0.2.{i + 1}")
        reply = await self.worker(i).request({"op": "join", "i": i, "name": self.users[i].name, "grant": grant, "texts": texts, "voice": voice, "listen": self.listen}, ("joined", i), JOIN_S)
        if "error" in reply:
            raise RuntimeError(f"{self.users[i].name} could not join: {reply['error']}")
        # Each heard by all before the next comes: every join renegotiates
        # everyone's subscriber connection.
        settle = time.monotonic() + SETTLE_S
        while any(self.worker(j).hears(j) < i for j in range(i + 1)):
            if time.monotonic() > settle:
                print(f"  {self.users[i].name}: not everyone hears everyone {SETTLE_S:.0f} s after joining", flush=True)
                break
            await asyncio.sleep(STATUS_S)

    async def say(self, i, k):
        return await self.worker(i).request({"op": "say", "i": i, "k": k}, ("said", i), JOIN_S)

    def cpu_seconds(self):
        return sum(cpu_seconds(w.proc.pid) or 0.0 for w in self.workers)

    async def leave(self):
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)


async def talk(call, speakers, pause, stop, said):
    """The speakers take turns, one sentence each, `pause` s of silence between."""
    turn = 0
    while not stop.is_set():
        try:
            await call.say(turn % speakers, turn // speakers)
        except (asyncio.TimeoutError, asyncio.CancelledError, OSError):
            pass  # its worker is gone: the table shows it
        else:
            said.append(time.monotonic())
        try:
            await asyncio.wait_for(stop.wait(), pause)
        except asyncio.TimeoutError:
            pass
        turn += 1


class Sampler:
    """One row of the table per call: the bridge, the room and the clients since the last."""

    def __init__(self, metrics_url, pid, alice, room, call, notices, said):
        self.metrics_url, self.pid, self.alice, self.room = metrics_url, pid, alice, room
        self.call, self.notices, self.said = call, notices, said
        self.rows = []
        self.last = None  # (when, metrics, bridge CPU s, client CPU s)

    def prime(self):
        self.last = (time.monotonic(), scrape(self.metrics_url), cpu_seconds(self.pid), self.client_cpu())
        return self.last[1]

    def client_cpu(self):
        """This process's CPU seconds and its workers'."""
        t = os.times()
        return t.user + t.system + self.call.cpu_seconds()

    async def take(self, t_s):
        now = time.monotonic()
        m, state = await asyncio.gather(asyncio.to_thread(scrape, self.metrics_url), asyncio.to_thread(self.alice.call_state, self.room))
        bridge_cpu, client_cpu = cpu_seconds(self.pid), self.client_cpu()
        then, m0, bridge0, client0 = self.last
        span = max(now - then, 1e-6)

        def delta(name):
            return m[name] - (m0 or {}).get(name, 0.0) if m and name in m else None

        count, total = delta("salon_caption_latency_seconds_count"), delta("salon_caption_latency_seconds_sum")
        row = {
            "t_s": t_s,
            "rss_mib": m["salon_process_resident_bytes"] / 2**20 if m and "salon_process_resident_bytes" in m else None,
            "fds": m and m.get("salon_process_open_fds"),
            "tasks": m and m.get("salon_tokio_alive_tasks"),
            "said": sum(then < s <= now for s in self.said),
            "notices": sum(then < n[0] <= now for n in self.notices),
            "segments": delta("salon_transcript_segments_total"),
            "dropped": m and m.get("salon_transcription_dropped_finals_total"),
            "latency_s": total / count if count else None,
            "engine": (delta("salon_transcription_engine_ms_total"), delta("salon_transcription_audio_ms_total")),
            "connected": self.call.connected(),
            "in_state": len(set(state.get("participants") or [])) if state.get("state") == "active" else 0,
            "bridge_cpu": 100 * (bridge_cpu - bridge0) / span if bridge_cpu is not None and bridge0 is not None else None,
            "client_cpu": 100 * (client_cpu - client0) / span if client_cpu >= client0 else None,  # not when a worker died
        }
        self.last = (now, m or m0, bridge_cpu, client_cpu)
        self.rows.append(row)
        return row


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def minute(t_s):
    return f"{t_s / 60:.2f}".rstrip("0").rstrip(".")


TABLE_HEAD = "| min | RSS MiB | fds | tasks | said | notices | segments | dropped | latency s | connected | in state | bridge CPU % | client CPU % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"


def table_row(r, n):
    return (
        f"| {minute(r['t_s'])} | {fmt(r['rss_mib'], '.1f')} | {fmt(r['fds'], '.0f')} | {fmt(r['tasks'], '.0f')} | {r['said']} | {r['notices']} "
        f"| {fmt(r['segments'], '.0f')} | {fmt(r['dropped'], '.0f')} | {fmt(r['latency_s'], '.2f')} | {r['connected']}/{n} | {r['in_state']}/{n} "
        f"| {fmt(r['bridge_cpu'], '.0f')} | {fmt(r['client_cpu'], '.0f')} |\n"
    )


def growth_from(rows, seconds):
    """The row growth is measured from: the first at or after minute 5, or 1/12 of a shorter run."""
    from_s = min(GROWTH_FROM_S, seconds / 12)
    return next((r for r in rows if r["t_s"] + 0.5 >= from_s), None)


def level(rows, key):
    """The median of up to LEVEL_OF samples: one connection open just then does not move it."""
    values = sorted(r[key] for r in rows)
    return values[len(values) // 2]


def verdict(rows, seconds, call, n, said, notices, exits):
    """The verdict lines, and whether every target was met."""
    lines, ok = [], True
    start = growth_from(rows, seconds)
    first = rows.index(start) if start is not None else len(rows)
    at_start, at_end = rows[first : first + LEVEL_OF], rows[-LEVEL_OF:]
    if len(rows) - first < 2 or any(None in (r["rss_mib"], r["fds"], r["tasks"]) for r in at_start + at_end):
        return ["verdict: not enough samples (or the bridge's /metrics did not answer) to judge growth"], False
    span = f"from min {minute(start['t_s'])} to min {minute(rows[-1]['t_s'])} (medians of {len(at_start)} samples from there and of the last {len(at_end)})"
    rss_start, rss_end = level(at_start, "rss_mib"), level(at_end, "rss_mib")
    growth = 100 * (rss_end - rss_start) / rss_start
    met = growth < GROWTH_TARGET_PCT
    ok &= met
    lines.append(f"RSS {rss_start:.1f} -> {rss_end:.1f} MiB {span}: {growth:+.2f} % (target < {GROWTH_TARGET_PCT:.0f} %): {'met' if met else 'MISSED'}")
    for key, label in [("fds", "open fds"), ("tasks", "tokio tasks")]:
        window = [r[key] for r in rows[first:] if r[key] is not None]
        was, now = level(at_start, key), level(at_end, key)
        met = now <= was + TOLERANCE
        ok &= met
        lines.append(f"{label} {was:.0f} -> {now:.0f} (range {min(window):.0f}-{max(window):.0f} over those minutes; target <= {was + TOLERANCE:.0f}): {'met' if met else 'MISSED'}")
    short = [r for r in rows if r["connected"] < n]
    met = not short and not call.dropped
    ok &= met
    seen = f"{n}/{n} connected at every sample" if not short else f"{len(short)} sample(s) with fewer than {n} connected (lowest {min(r['connected'] for r in short)})"
    lines.append(f"participants: {seen}, {call.dropped} dropped, {call.reconnects} reconnect(s): {'met' if met else 'MISSED'}")
    if any(exits):
        lines.append(f"SDK processes' exit codes after leaving: {exits} (not the bridge's doing; the participants had left)")
    if rows[-1]["t_s"] < seconds - 0.5:
        lines.append(f"stopped early: at min {minute(rows[-1]['t_s'])} of {minute(seconds)}")
    heard = len(notices) > 0 or not said
    ok &= heard
    lines.append(f"transcription: {len(notices)} notices for {len(said)} sentences said, {rows[-1]['dropped'] or 0:.0f} finals dropped{'' if heard else ': NO NOTICES'}")
    return lines, ok


def svg(rows, seconds, every, title):
    """A hand-written SVG of RSS (MiB, left axis), fds and tasks (right axis), in
    the style of bench/sfu/loadgen's soak plots."""
    W, H, LEFT, RIGHT, TOP, BOTTOM = 760.0, 380.0, 70.0, 70.0, 40.0, 50.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    minutes = seconds >= 600
    x_unit = 60.0 if minutes else 1.0
    x_max = seconds / x_unit
    rows = [r for r in rows if None not in (r["rss_mib"], r["fds"], r["tasks"])]

    def tick_step(top):
        raw = max(top / 5, sys.float_info.min)
        magnitude = 10 ** math.floor(math.log10(raw))
        return next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)

    def ticks(step, top):
        i = 0
        while round(i * step, 3) <= top + 1e-9:
            yield round(i * step, 3)
            i += 1

    def axis_max(top):
        step = tick_step(top * 1.1)
        return step, max(1, -(-top * 1.1 // step)) * step

    x_step = tick_step(x_max)
    rss_step, rss_max = axis_max(max([r["rss_mib"] for r in rows], default=1.0))
    n_step, n_max = axis_max(max([max(r["fds"], r["tasks"]) for r in rows], default=10.0))

    def x(t_s):
        return LEFT + plot_w * (t_s / x_unit) / x_max

    def y(v, top):
        return TOP + plot_h * (1 - v / top)

    def line(key, top):
        return " ".join(f"{x(r['t_s']):.1f},{y(r[key], top):.1f}" for r in rows)

    def label(v):
        return f"{v:g}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W:g}" height="{H:g}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W:g}" height="{H:g}" fill="white"/>',
        f'<text x="{W / 2:g}" y="22" text-anchor="middle" font-size="14">{title}: bridge RSS, open fds and tokio tasks over {seconds:.0f} s (every {every:.0f} s)</text>',
        f'<rect x="{LEFT:g}" y="{TOP:g}" width="{plot_w:g}" height="{plot_h:g}" fill="none" stroke="black"/>',
    ]
    for tick in ticks(x_step, x_max):
        px = LEFT + plot_w * tick / x_max
        out.append(f'<line x1="{px:.1f}" y1="{TOP + plot_h:g}" x2="{px:.1f}" y2="{TOP + plot_h + 5:g}" stroke="black"/><text x="{px:.1f}" y="{TOP + plot_h + 18:g}" text-anchor="middle">{label(tick)}</text>')
    for step, top, at, anchor in [(rss_step, rss_max, LEFT - 8, "end"), (n_step, n_max, LEFT + plot_w + 8, "start")]:
        for value in ticks(step, top):
            py = y(value, top)
            out.append(f'<line x1="{LEFT:g}" y1="{py:.1f}" x2="{LEFT + plot_w:g}" y2="{py:.1f}" stroke="#ddd"/><text x="{at:g}" y="{py + 4:.1f}" text-anchor="{anchor}">{label(value)}</text>')
    start = growth_from(rows, seconds)
    if start is not None:
        px = x(start["t_s"])
        out.append(f'<line x1="{px:.1f}" y1="{TOP:g}" x2="{px:.1f}" y2="{TOP + plot_h:g}" stroke="#888" stroke-dasharray="4 4"/><text x="{px + 4:.1f}" y="{TOP + plot_h - 6:g}" fill="#888">growth measured from here</text>')
    mid = TOP + plot_h / 2
    out += [
        f'<text x="{LEFT + plot_w / 2:g}" y="{H - 10:g}" text-anchor="middle">time ({"min" if minutes else "s"})</text>',
        f'<text transform="translate(18 {mid:g}) rotate(-90)" text-anchor="middle" fill="#1f5fbf">RSS (MiB)</text>',
        f'<text transform="translate({W - 18:g} {mid:g}) rotate(90)" text-anchor="middle">open fds, tokio tasks</text>',
        f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{line("rss_mib", rss_max)}"/>',
        f'<polyline fill="none" stroke="#c0392b" stroke-width="2" points="{line("fds", n_max)}"/>',
        f'<polyline fill="none" stroke="#27864a" stroke-width="2" points="{line("tasks", n_max)}"/>',
        f'<text x="{LEFT + plot_w - 210:g}" y="{TOP + 16:g}" fill="#1f5fbf">— RSS</text><text x="{LEFT + plot_w - 140:g}" y="{TOP + 16:g}" fill="#c0392b">— fds</text><text x="{LEFT + plot_w - 70:g}" y="{TOP + 16:g}" fill="#27864a">— tasks</text>',
        "</svg>",
    ]
    return "\n".join(out) + "\n"


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3600, help="length of the run, from the last join (default 3600)")
    p.add_argument("--participants", type=int, default=20, help="participants in the call (default 20)")
    p.add_argument("--speakers", type=int, default=4, help="of them, how many take turns speaking (default 4)")
    p.add_argument("--every", type=float, default=60, help="seconds between samples (default 60)")
    p.add_argument("--pause", type=float, default=8, help="seconds of silence between two sentences (default 8)")
    p.add_argument("--subscribe-all", action="store_true", help="every participant keeps every track, not only the speakers' (too much for a 2-core machine: see bench/bridge/README.md)")
    p.add_argument("--per-process", type=int, default=PER_PROCESS, help=f"participants per SDK process (default {PER_PROCESS})")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help="where the report and plot go, without .txt/.svg (default bench/bridge/results/DATE-soak-SECONDSs)")
    a = p.parse_args()
    a.out = a.out or os.path.join(ROOT, "bench/bridge/results", f"{datetime.date.today()}-soak-{a.seconds:.0f}s")
    if a.worker:
        return a
    if not 1 <= a.participants <= 250 or not 0 <= a.speakers <= min(a.participants, len(SENTENCES)) or a.every <= 0 or a.seconds < a.every or a.per_process < 1:
        p.error(f"need 1 <= --participants <= 250, 0 <= --speakers <= --participants and {len(SENTENCES)}, 0 < --every <= --seconds, --per-process >= 1")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    open(a.out + ".log", "w").close()
    return a


def sdk_log(path):
    """The SDK's own log (connections, reconnections, slow signalling) goes to `path`."""
    log = logging.getLogger("livekit")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{os.getpid()}] %(levelname)s %(message)s"))
    log.addHandler(handler)


async def main():
    args = arguments()
    sdk_log(args.out + ".log")
    if args.worker:
        return await worker()
    metrics_url, secret = demo_config()
    n = args.participants
    setup_at = time.monotonic()
    alice = User("alice")
    room_id, room = demo_room(alice)
    names = (["alice", "bob"] + [f"soak{i:02}" for i in range(1, n - 1)])[:n]
    users = [alice] + [member(alice, room_id, name, secret) for name in names[1:]]
    call_url = live_call(alice, room)
    pid = bridge_pid()
    notices, said = [], []  # (when, org.salon.transcript) from alice's /sync; when each sentence ended
    threading.Thread(target=watch_notices, args=(alice, room_id, notices), daemon=True).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    title = f"soak: {n} participants in {math.ceil(n / args.per_process)} SDK processes ({args.speakers} speaking in turn, {args.pause:g} s apart), {args.seconds:.0f} s, a sample every {args.every:g} s"
    print(title, flush=True)
    call = Call(users, [], None if args.subscribe_all else [u.mxid for u in users[: args.speakers]])
    setup_s = float("nan")
    try:
        for number in range(math.ceil(n / args.per_process)):
            proc = await asyncio.create_subprocess_exec(sys.executable, os.path.abspath(__file__), "--worker", "--out", args.out, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            call.workers.append(Worker(proc, number, call.on_event))
        sampler = Sampler(metrics_url, pid, alice, room, call, notices, said)
        before = sampler.prime()
        if before is None:
            sys.exit(f"The bridge's {metrics_url} does not answer: is the demo running (SALON_DEMO_DIR={DEMO})?")
        joins_at = time.monotonic()
        print(f"  {n} users ready in {joins_at - setup_at:.0f} s", flush=True)
        for i in range(n):
            if stop.is_set():
                break
            texts = SENTENCES[i :: args.speakers] if i < args.speakers else None
            await call.join(i, call_url, texts, VOICES[i % len(VOICES)])
        setup_s = time.monotonic() - setup_at
        print(f"  {n} joined in {time.monotonic() - joins_at:.0f} s", flush=True)
        talker = asyncio.ensure_future(talk(call, args.speakers, args.pause, stop, said)) if args.speakers else None
        t0 = time.monotonic()
        times = [k * args.every for k in range(int(args.seconds // args.every) + 1)]
        times += [args.seconds] if times[-1] < args.seconds - 0.5 else []
        for t_s in times:
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, t0 + t_s - time.monotonic()))
                break
            except asyncio.TimeoutError:
                pass
            r = await sampler.take(t_s)
            print(f"  [{minute(t_s)} min] RSS {fmt(r['rss_mib'], '.1f')} MiB, fds {fmt(r['fds'], '.0f')}, tasks {fmt(r['tasks'], '.0f')}, notices {r['notices']}, connected {r['connected']}/{n}", flush=True)
        stop.set()
        if talker:
            await talker
    finally:
        stop.set()
        await call.leave()
    left_at = time.monotonic()
    await asyncio.sleep(AFTER_LEAVE_S)
    after = scrape(metrics_url)
    # The notices of the last sentences, for the totals (not in the table).
    while notices and time.monotonic() - max(notices[-1][0], left_at) < 5 and time.monotonic() - left_at < 30:
        await asyncio.sleep(0.5)

    rows = sampler.rows
    engine = [r["engine"] for r in rows if None not in r["engine"]]
    engine_ms, audio_ms = sum(e for e, _ in engine), sum(a for _, a in engine)
    head = [
        f"Salon bridge soak, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {git_head()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end)",
        title,
        f"setup {setup_s:.0f} s; before the joins (call live, transcription on): RSS {before.get('salon_process_resident_bytes', 0) / 2**20:.1f} MiB, fds {before.get('salon_process_open_fds', 0):.0f}, tasks {before.get('salon_tokio_alive_tasks', 0):.0f}",
        f"Whisper: {engine_ms / 1000:.0f} s of engine time for {audio_ms / 1000:.0f} s of speech ({engine_ms / max(audio_ms, 1):.2f} x real time)",
        "said: sentences that ended in the interval; notices: org.salon.transcript notices alice's /sync got; segments: salon_transcript_segments_total's increase; dropped: salon_transcription_dropped_finals_total; latency: mean caption latency of the interval (bridge's histogram); in state: participants in org.salon.call; client CPU: the SDK processes and this one",
    ]
    if after:
        head.append(f"{AFTER_LEAVE_S:.0f} s after the participants left: RSS {after.get('salon_process_resident_bytes', 0) / 2**20:.1f} MiB, fds {after.get('salon_process_open_fds', 0):.0f}, tasks {after.get('salon_tokio_alive_tasks', 0):.0f}")
    lines, ok = verdict(rows, args.seconds, call, n, said, notices, [w.proc.returncode for w in call.workers])
    report = "\n".join(head) + "\n\n" + TABLE_HEAD + "".join(table_row(r, n) for r in rows) + "\n" + "\n".join(lines) + f"\nsoak: {'PASS' if ok else 'FAIL'}\n"
    with open(args.out + ".txt", "w") as f:
        f.write(report)
    with open(args.out + ".svg", "w") as f:
        f.write(svg(rows, args.seconds, args.every, f"{n} participants"))
    print("\n" + report + f"report {args.out}.txt, plot {args.out}.svg, the SDK's log {args.out}.log", flush=True)
    return 0 if ok else 1


def git_head():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


sys.exit(asyncio.run(main()))
