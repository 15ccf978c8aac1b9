"""Load: many long-polling /sync clients and concurrent senders against the real server.

Every receiver is its own user and device, joined to some of a few shared rooms, and long-polls
/sync like a real client: when a timeline comes back `limited` it paginates back with /messages
from `prev_batch` to its previous `since` to fill the gap. At the end every receiver must hold
every message of its rooms exactly once and in the room's order, with no request failing, no
long-poll overrunning its own timeout by much, and the server's memory bounded.

Spec: client-server-api, "Syncing" and "GET /_matrix/client/v3/rooms/{roomId}/messages";
DESIGN.md, "Sync: streams and a notifier".
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer, start_server

LONG_WANTED = os.environ.get("POCKETSERVER_LONG_TESTS") == "1"
LONG_POLL_MS = 30_000
# A long-poll may answer this much later than its own timeout before it counts as a timeout.
LONG_POLL_SLACK_S = 10.0
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}})
GAP_PAGE = 50
SETUP_CONCURRENCY = 16
# A trivial request may wait this long behind the load before it counts as an event-loop stall.
MAX_PROBE_DELAY_S = 5.0
# Senders send as fast as the server answers and every user joins at once: no rate limit may bite.
UNLIMITED = {f"rc_{kind}_{unit}": value for kind in ("message", "joins", "room_creation")
             for unit, value in (("per_second", 100_000.0), ("burst", 100_000))}


@dataclass(frozen=True)
class Profile:
    receivers: int             # long-polling /sync clients, one user and device each
    senders: int               # users sending messages, each waiting for its reply before the next
    seconds: float             # how long the senders send
    rooms: int                 # shared rooms
    rooms_per_receiver: int    # each receiver joins this many of them (senders join all)
    rss_bound_mib: int         # the server's peak RSS must stay below this
    drain_s: float             # after the senders stop, time for every receiver to catch up
    send_interval_s: float = 0.0   # a sender starts a message at most this often (0: as fast as it can)


# Measured peaks: about 70 MiB for CI and 150 MiB for FULL; the bounds leave room, not runaway growth.
# FULL paces its senders: as fast as they could go, they sent ~250 msg/s, i.e. 50,000 deliveries a
# second to 200 receivers per room, more than this test's own client (on the same cores) can read.
CI = Profile(receivers=100, senders=5, seconds=10, rooms=4, rooms_per_receiver=2, rss_bound_mib=300, drain_s=30)
FULL = Profile(receivers=500, senders=20, seconds=60, rooms=5, rooms_per_receiver=2, rss_bound_mib=512, drain_s=90,
               send_interval_s=1.5)


@dataclass
class User:
    user_id: str
    headers: dict[str, str]
    rooms: list[str] = field(default_factory=list)


@dataclass
class Receiver:
    user: User
    since: str = ""
    log: dict[str, list[str]] = field(default_factory=dict)     # room -> message event IDs as seen
    caught_up: asyncio.Future[None] | None = None


@dataclass
class Run:
    """What the load produced and what went wrong, shared by every task of one run."""

    base: str
    http: aiohttp.ClientSession
    started: dict[str, float] = field(default_factory=dict)     # message body -> send start
    acked: dict[str, list[str]] = field(default_factory=dict)   # room -> acknowledged event IDs
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    overruns: list[float] = field(default_factory=list)         # long-polls past timeout + slack
    gap_fills: int = 0
    syncs: int = 0
    expected: dict[str, set[str]] | None = None                 # set once the senders have stopped

    async def call(self, method: str, path: str, user: User, **kwargs: Any) -> dict[str, Any] | None:
        """One request; a failure is recorded and answered with None."""
        try:
            async with self.http.request(method, self.base + path, headers=user.headers, **kwargs) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 200:
                    return body
                self.errors.append(f"{method} {path.split('?')[0]}: {resp.status} {body}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.errors.append(f"{method} {path.split('?')[0]}: {exc!r}")
        return None


def raise_open_files_limit(needed: int) -> None:
    """Each long-poll holds a socket in the test and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB, from /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def setup_users(server: RunningServer, run: Run, profile: Profile) -> tuple[list[User], list[Receiver]]:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def register(name: str) -> User:
        async with gate:
            body = await server.register_shared_secret(run.http, name, "pw")
        return User(body["user_id"], {"Authorization": f"Bearer {body['access_token']}"})

    senders = list(await asyncio.gather(*(register(f"sender{j}") for j in range(profile.senders))))
    receivers = list(await asyncio.gather(*(register(f"receiver{i}") for i in range(profile.receivers))))
    rooms = []
    for r in range(profile.rooms):
        body = await run.call("POST", "/_matrix/client/v3/createRoom", senders[0],
                              json={"preset": "public_chat", "name": f"load {r}"})
        assert body is not None, run.errors
        rooms.append(body["room_id"])
    for sender in senders:
        sender.rooms = list(rooms)
    for i, receiver in enumerate(receivers):
        receiver.rooms = [rooms[(i + k) % len(rooms)] for k in range(profile.rooms_per_receiver)]

    async def join(user: User, room_id: str) -> None:
        async with gate:
            assert await run.call("POST", f"/_matrix/client/v3/join/{room_id}", user, json={}) is not None, run.errors

    await asyncio.gather(*(join(u, room) for u in senders[1:] + receivers for room in u.rooms))
    return senders, [Receiver(u, log={room: [] for room in u.rooms}) for u in receivers]


async def send_loop(run: Run, sender: User, index: int, stop: asyncio.Event, interval_s: float) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        room_id = sender.rooms[n % len(sender.rooms)]
        body = f"s{index}-{n}"
        began = run.started[body] = time.monotonic()
        reply = await run.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{body}", sender,
                               json={"msgtype": "m.text", "body": body})
        if reply is not None:
            run.acked[room_id].append(reply["event_id"])
        pause = interval_s - (time.monotonic() - began)
        if pause > 0:
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except asyncio.TimeoutError:
                pass


async def fill_gap(run: Run, receiver: Receiver, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]] | None:
    """The events between `since` and a limited timeline's start, oldest first, as a client pages them."""
    gap: list[dict[str, Any]] = []
    token = prev_batch
    while True:
        page = await run.call("GET", f"/_matrix/client/v3/rooms/{room_id}/messages", receiver.user,
                              params={"dir": "b", "from": token, "to": since, "limit": str(GAP_PAGE)})
        if page is None:
            return None
        gap += page["chunk"]
        if "end" not in page or not page["chunk"]:
            return list(reversed(gap))
        token = page["end"]


def record(run: Run, receiver: Receiver, room_id: str, events: list[dict[str, Any]], now: float) -> None:
    for event in events:
        if event.get("type") != "m.room.message":
            continue
        receiver.log[room_id].append(event["event_id"])
        started = run.started.get(event["content"].get("body", ""))
        if started is not None:
            run.latencies.append(now - started)


def check_caught_up(run: Run, receiver: Receiver) -> None:
    if run.expected is None or receiver.caught_up is None or receiver.caught_up.done():
        return
    if all(run.expected[room] <= set(receiver.log[room]) for room in receiver.user.rooms):
        receiver.caught_up.set_result(None)


async def sync_loop(run: Run, receiver: Receiver) -> None:
    """Long-poll /sync forever, filling every limited timeline's gap like a real client."""
    while True:
        began = time.monotonic()
        body = await run.call("GET", "/_matrix/client/v3/sync", receiver.user,
                              params={"since": receiver.since, "timeout": str(LONG_POLL_MS), "filter": SYNC_FILTER})
        now = time.monotonic()
        if body is None:
            await asyncio.sleep(0.5)    # a client backs off after an error (and the error is counted)
            continue
        run.syncs += 1
        if now - began > LONG_POLL_MS / 1000 + LONG_POLL_SLACK_S:
            run.overruns.append(now - began)
        for room_id, room in body.get("rooms", {}).get("join", {}).items():
            if room_id not in receiver.log:
                continue
            timeline = room.get("timeline", {})
            events = timeline.get("events", [])
            if timeline.get("limited"):
                run.gap_fills += 1
                gap = await fill_gap(run, receiver, room_id, timeline["prev_batch"], receiver.since)
                if gap is None:
                    continue    # counted as an error; the messages will show up missing
                record(run, receiver, room_id, gap, time.monotonic())
            record(run, receiver, room_id, events, now)
        receiver.since = body["next_batch"]
        check_caught_up(run, receiver)


async def sample_memory(pid: int, peaks: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for key, value in memory_kib(pid).items():
            peaks[key] = max(peaks.get(key, 0), value)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


async def probe_loop(run: Run, stop: asyncio.Event, delays: list[float]) -> None:
    """How long a trivial request waits: a stalled event loop shows up here."""
    while not stop.is_set():
        began = time.monotonic()
        async with run.http.get(run.base + "/_matrix/client/versions") as resp:
            await resp.read()
        delays.append(time.monotonic() - began)
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass


async def room_order(run: Run, user: User, room_id: str) -> list[str]:
    """The room's messages in the server's order, paged forwards from the start."""
    ids: list[str] = []
    token = None
    while True:
        params = {"dir": "f", "limit": "1000", **({"from": token} if token else {})}
        page = await run.call("GET", f"/_matrix/client/v3/rooms/{room_id}/messages", user, params=params)
        assert page is not None, run.errors[-1:]
        ids += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        if "end" not in page or not page["chunk"]:
            return ids
        token = page["end"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_load(tmp_path: Path, profile: Profile) -> None:
    raise_open_files_limit(2 * (profile.receivers + profile.senders) + 1024)
    server = start_server(tmp_path, **UNLIMITED)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL_MS / 1000 + 60)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            run = Run(server.base_url, http)
            senders, receivers = await setup_users(server, run, profile)
            rooms = senders[0].rooms
            run.acked = {room: [] for room in rooms}
            gate = asyncio.Semaphore(SETUP_CONCURRENCY)

            async def initial(receiver: Receiver) -> None:
                async with gate:
                    body = await run.call("GET", "/_matrix/client/v3/sync", receiver.user, params={"filter": SYNC_FILTER})
                assert body is not None, run.errors
                receiver.since = body["next_batch"]

            await asyncio.gather(*(initial(r) for r in receivers))   # as a client does at start
            assert not run.errors, run.errors[:5]

            loop = asyncio.get_running_loop()
            for receiver in receivers:
                receiver.caught_up = loop.create_future()
            stop_sampling, stop_sending = asyncio.Event(), asyncio.Event()
            peaks: dict[str, int] = {}
            probe_delays: list[float] = []
            background = [asyncio.create_task(sample_memory(server.process.pid, peaks, stop_sampling)),
                          asyncio.create_task(probe_loop(run, stop_sampling, probe_delays))]
            pollers = [asyncio.create_task(sync_loop(run, r)) for r in receivers]
            began = time.monotonic()
            sending = [asyncio.create_task(send_loop(run, s, j, stop_sending, profile.send_interval_s))
                       for j, s in enumerate(senders)]
            await asyncio.sleep(profile.seconds)
            stop_sending.set()
            await asyncio.gather(*sending)
            send_seconds = time.monotonic() - began
            run.expected = {room: set(ids) for room, ids in run.acked.items()}
            for receiver in receivers:
                check_caught_up(run, receiver)
            drained = time.monotonic()
            done, pending = await asyncio.wait([r.caught_up for r in receivers if r.caught_up],
                                               timeout=profile.drain_s)
            drain_seconds = time.monotonic() - drained
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            stop_sampling.set()
            await asyncio.gather(*background)
            order = {room: await room_order(run, senders[0], room) for room in rooms}
            for key, value in memory_kib(server.process.pid).items():
                peaks[key] = max(peaks.get(key, 0), value)
    finally:
        code = server.stop()

    sent = sum(len(ids) for ids in run.acked.values())
    deliveries = sum(len(r.log[room]) for r in receivers for room in r.user.rooms)
    report = (f"\nload {profile}: {sent} messages in {send_seconds:.1f} s = {sent / send_seconds:.0f} msg/s, "
              f"{deliveries} deliveries, {run.syncs} syncs, {run.gap_fills} gap fills, drain {drain_seconds:.1f} s\n"
              f"  latency send->seen s: p50 {percentile(run.latencies, .5):.3f} p90 {percentile(run.latencies, .9):.3f}"
              f" p99 {percentile(run.latencies, .99):.3f} max {max(run.latencies, default=0):.3f}"
              f" (mean {statistics.fmean(run.latencies) if run.latencies else 0:.3f})\n"
              f"  server peak RSS {peaks.get('VmRSS', 0) / 1024:.0f} MiB (VmHWM {peaks.get('VmHWM', 0) / 1024:.0f} MiB),"
              f" probe delay max {max(probe_delays, default=0):.3f} s p99 {percentile(probe_delays, .99):.3f} s\n"
              f"  errors {len(run.errors)}, long-poll overruns {len(run.overruns)}, not caught up {len(pending)}")
    kinds = collections.Counter(e.split(":", 1)[0] + ":" + e.split(":", 1)[1][:40] for e in run.errors)
    print(report + "".join(f"\n    {n} x {kind}" for kind, n in kinds.most_common(8)))

    assert code == 0, "server did not shut down cleanly"
    assert not run.errors, f"{len(run.errors)} failed requests, e.g. {run.errors[:5]}"
    assert not run.overruns, f"{len(run.overruns)} long-polls overran, longest {max(run.overruns):.1f} s"
    assert sent >= profile.senders * 10, "the load produced too few messages to mean anything"
    for room in rooms:
        assert sorted(order[room]) == sorted(run.acked[room]), "the room's history differs from the acknowledged sends"
    for receiver in receivers:
        for room in receiver.user.rooms:
            seen = receiver.log[room]
            dupes = len(seen) - len(set(seen))
            assert dupes == 0, f"{receiver.user.user_id} saw {dupes} messages twice in {room}"
            missing = len(set(order[room]) - set(seen))
            assert missing == 0, f"{receiver.user.user_id} never saw {missing} messages of {room}"
            assert seen == order[room], f"{receiver.user.user_id} saw {room}'s messages out of order"
    assert max(probe_delays) < MAX_PROBE_DELAY_S, f"the server stalled for {max(probe_delays):.1f} s"
    assert peaks["VmHWM"] < profile.rss_bound_mib * 1024, f"server peak RSS {peaks['VmHWM'] // 1024} MiB"


async def test_load_ci(tmp_path: Path) -> None:
    """A shortened load run that fits CI: a hundred long-polls, five senders, ten seconds."""
    await run_load(tmp_path, CI)


@pytest.mark.long
async def test_load_full(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The full load run: five hundred long-polls, twenty senders, sixty seconds."""
    markexpr = request.config.getoption("markexpr") or ""
    if not (LONG_WANTED or ("long" in markexpr and "not long" not in markexpr)):
        pytest.skip("long load test: run with -m long or POCKETSERVER_LONG_TESTS=1")
    await run_load(tmp_path, FULL)
