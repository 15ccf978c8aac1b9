#!/usr/bin/env python3
"""How /sync cost grows: a user in more and more rooms, and one room with more and more history.

For the user in many rooms it also times simplified sliding sync (MSC4186) as Element X asks for
it: the 20 most recent rooms with their last event and a few state events, then the whole room list
as Element X grows its window after that (100 rooms more a request).

Starts its own pocketserver on 127.0.0.1 in a temporary data directory (or uses a running
homeserver with --base-url and --server-pid, such as ../shared/bench/synapse.sh's Synapse), fills it
over the client API, and measures initial and incremental /sync (median of a few runs) and the
server's RSS at each size. Prints a table and writes JSON (--json). Issue 9's scaling scenario.

    .venv/bin/python bench/scaling.py --json bench/results/scaling.json
    .venv/bin/python bench/scaling.py --base-url http://127.0.0.1:18008 --server-pid PID \
        --secret hsbench-shared-secret --json synapse-scaling.json
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

SECRET = "scaling-secret"     # the registration shared secret of the server this script starts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, http: aiohttp.ClientSession, base: str, secret: str = SECRET) -> None:
        self.http, self.base, self.secret = http, base, secret

    async def call(self, method: str, path: str, token: str | None = None, body=None, params=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body, params=params, headers=headers) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data

    async def user(self, name: str) -> str:
        nonce = (await self.call("GET", "/_synapse/admin/v1/register"))["nonce"]
        mac = hmac.new(self.secret.encode(), b"\x00".join([nonce.encode(), name.encode(), b"pw", b"notadmin"]),
                       hashlib.sha1).hexdigest()
        body = await self.call("POST", "/_synapse/admin/v1/register",
                               body={"nonce": nonce, "username": name, "password": "pw", "admin": False, "mac": mac})
        return body["access_token"]

    async def timed_sync(self, token: str, params: dict) -> tuple[float, dict]:
        started = time.perf_counter()
        body = await self.call("GET", "/_matrix/client/v3/sync", token, params=params)
        return (time.perf_counter() - started) * 1000, body


# With --state-after, /sync asks for each room's state at the end of its timeline, as
# matrix-js-sdk (Element Web) does on every /sync.
STATE_AFTER = {"org.matrix.msc4222.use_state_after": "true"}


async def measure_sync(b: Bench, token: str, runs: int = 3, extra: dict | None = None) -> tuple[float, float]:
    """Median initial /sync and median incremental /sync with one new message, in ms.

    Each run's filter is new (an account_data type nobody uses is left out), so a server that
    keeps recent /sync responses, as Synapse does for two minutes, computes every one.
    """
    initial, incremental = [], []
    for _ in range(runs):
        flt = json.dumps({"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}},
                          "account_data": {"not_types": [f"scaling.unused.{time.monotonic_ns()}"]}})
        ms, body = await b.timed_sync(token, {"filter": flt, **(extra or {})})
        initial.append(ms)
        since = body["next_batch"]
        room = next(iter(body["rooms"]["join"]))
        await b.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{time.monotonic_ns()}", token,
                     {"msgtype": "m.text", "body": "tick"})
        ms, _ = await b.timed_sync(token, {"filter": flt, "since": since, **(extra or {})})
        incremental.append(ms)
    return statistics.median(initial), statistics.median(incremental)


# Element X's room list: a window of the most recent rooms, one event each, the state it shows.
SLIDING_BODY = {
    "lists": {"all_rooms": {
        "ranges": [[0, 19]], "timeline_limit": 1,
        "required_state": [["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
                           ["m.room.name", ""], ["m.room.avatar", ""], ["m.room.topic", ""],
                           ["m.room.power_levels", ""], ["m.room.join_rules", ""], ["m.room.create", ""],
                           ["m.room.canonical_alias", ""]]}},
    "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True},
                   "account_data": {"enabled": True}, "receipts": {"enabled": True},
                   "typing": {"enabled": True}},
}
SLIDING_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def measure_sliding(b: Bench, token: str, runs: int = 3) -> tuple[float, float]:
    """Median first sliding sync of a new connection, and median next one after one new message, in ms."""
    initial, incremental = [], []
    for n in range(runs):
        conn = {**SLIDING_BODY, "conn_id": f"scaling-{time.monotonic_ns()}-{n}"}
        started = time.perf_counter()
        body = await b.call("POST", SLIDING_PATH, token, conn)
        initial.append((time.perf_counter() - started) * 1000)
        room = next(iter(body["rooms"]))
        await b.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{time.monotonic_ns()}", token,
                     {"msgtype": "m.text", "body": "tick"})
        started = time.perf_counter()
        await b.call("POST", SLIDING_PATH, token, conn, params={"pos": body["pos"], "timeout": "0"})
        incremental.append((time.perf_counter() - started) * 1000)
    return statistics.median(initial), statistics.median(incremental)


async def measure_growing(b: Bench, token: str, rooms: int, runs: int = 3) -> float:
    """Median total time, in ms, of a new connection's window growing from 20 rooms to all of them."""
    totals = []
    for n in range(runs):
        conn = json.loads(json.dumps(SLIDING_BODY))
        conn["conn_id"] = f"growing-{time.monotonic_ns()}-{n}"
        pos, total = None, 0.0
        for end in [19, *range(99, rooms + 99, 100)]:
            conn["lists"]["all_rooms"]["ranges"] = [[0, min(end, rooms - 1)]]
            started = time.perf_counter()
            body = await b.call("POST", SLIDING_PATH, token, conn, params={"pos": pos, "timeout": "0"} if pos else None)
            total += (time.perf_counter() - started) * 1000
            pos = body["pos"]
        totals.append(total)
    return statistics.median(totals)


def start_pocketserver() -> tuple[subprocess.Popen, str]:
    """A pocketserver in a temporary data directory, its rate limits out of the way."""
    data = Path(tempfile.mkdtemp(prefix="pocket-scaling-"))
    port = free_port()
    config = data / "pocket.toml"
    limits = "\n".join(f"rc_{k}_per_second = 1000000.0\nrc_{k}_burst = 1000000" for k in
                       ("login", "registration", "failed_auth", "message", "room_creation", "invites",
                        "invites_received", "joins"))
    config.write_text(f'server_name = "localhost"\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{data}"\n'
                      f'registration_shared_secret = "{SECRET}"\nlan_discovery = false\nlog_level = "warning"\n{limits}\n')
    proc = subprocess.Popen([sys.executable, "-m", "pocketserver", "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def run(args: argparse.Namespace) -> dict:
    proc = None
    if args.base_url:
        base, pid, secret = args.base_url.rstrip("/"), args.server_pid, args.secret
    else:
        proc, base = start_pocketserver()
        pid, secret = proc.pid, SECRET
    results: dict = {"server": base, "rooms": [], "history": []}
    try:
        async with aiohttp.ClientSession() as http:
            b = Bench(http, base, secret)
            for _ in range(200):
                try:
                    await b.call("GET", "/_matrix/client/versions")
                    break
                except (aiohttp.ClientError, RuntimeError):
                    await asyncio.sleep(0.05)
            # A user in more and more rooms (each with a few messages).
            me = await b.user("many-rooms")
            created = 0
            for target in args.room_steps:
                while created < target:
                    room = (await b.call("POST", "/_matrix/client/v3/createRoom", me, {"name": f"r{created}"}))["room_id"]
                    for i in range(3):
                        await b.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{created}-{i}", me,
                                     {"msgtype": "m.text", "body": f"hello {i}"})
                    created += 1
                initial, incr = await measure_sync(b, me, extra=STATE_AFTER if args.state_after else None)
                s_initial, s_incr = await measure_sliding(b, me)
                growing = await measure_growing(b, me, target)
                results["rooms"].append({"rooms": target, "initial_ms": initial, "incremental_ms": incr,
                                         "sliding_initial_ms": s_initial, "sliding_incremental_ms": s_incr,
                                         "sliding_growing_ms": growing, "rss_mib": rss_mib(pid)})
                print(f"rooms={target:4d}  initial {initial:7.1f} ms  incremental {incr:6.1f} ms  "
                      f"sliding {s_initial:7.1f} / {s_incr:6.1f} ms  whole list {growing:7.1f} ms  "
                      f"RSS {rss_mib(pid):6.1f} MiB", flush=True)
            # One room with 100 members and more and more history.
            owner = await b.user("big-room-owner")
            room = (await b.call("POST", "/_matrix/client/v3/createRoom", owner, {"preset": "public_chat"}))["room_id"]
            members = [await b.user(f"member{i}") for i in range(args.members - 1)]
            for token in members:
                await b.call("POST", f"/_matrix/client/v3/rooms/{room}/join", token, {})
            reader = members[0]
            sent = 0
            for target in args.history_steps:
                batch = []
                while sent < target:
                    token = members[sent % len(members)]
                    batch.append(b.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/h{sent}", token,
                                        {"msgtype": "m.text", "body": f"message {sent}"}))
                    sent += 1
                    if len(batch) == 16:
                        await asyncio.gather(*batch)
                        batch = []
                await asyncio.gather(*batch)
                initial, incr = await measure_sync(b, reader, extra=STATE_AFTER if args.state_after else None)
                s_initial, s_incr = await measure_sliding(b, reader)
                results["history"].append({"messages": target, "members": args.members, "initial_ms": initial,
                                           "incremental_ms": incr, "sliding_initial_ms": s_initial,
                                           "sliding_incremental_ms": s_incr, "rss_mib": rss_mib(pid)})
                print(f"messages={target:6d} members={args.members}  initial {initial:7.1f} ms  "
                      f"incremental {incr:6.1f} ms  sliding {s_initial:7.1f} / {s_incr:6.1f} ms  "
                      f"RSS {rss_mib(pid):6.1f} MiB", flush=True)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room-steps", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--history-steps", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--state-after", action="store_true",
                        help="/sync as matrix-js-sdk asks for it: with MSC4222's use_state_after")
    parser.add_argument("--base-url", help="measure this running homeserver instead of starting a pocketserver")
    parser.add_argument("--server-pid", type=int, help="its process, for RSS (with --base-url)")
    parser.add_argument("--secret", default="hsbench-shared-secret",
                        help="its registration_shared_secret (with --base-url)")
    args = parser.parse_args()
    if args.base_url and not args.server_pid:
        parser.error("--base-url needs --server-pid")
    results = asyncio.run(run(args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
