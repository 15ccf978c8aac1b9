#!/usr/bin/env python3
"""What a homeserver writes to disk for a slow conversation, message by message.

compare.sh sends 600 messages as fast as 8 senders can, so the disk syncs are shared by many
messages. A family chat is the opposite: a message every few seconds or minutes, which every
other member's app reads (a read receipt) soon after. Each of those requests is a commit of its
own, and whatever the server writes besides them (indexes, flushes) is a commit too. This script
puts N users in one room, each long-polling /sync as an idle app does; every `--every` seconds one
of them (in turn) sends a message, and each of the others posts a read receipt for it a moment
(`--read-delay`) after its /sync brings it. It prints the server process's bytes written and
write syscalls per message (/proc/PID/io), and with `--strace` the disk syncs per message (fsync
+ fdatasync, counted by strace attached to the server). Run it against pocketserver and against
Synapse (`../shared/bench/synapse.sh start` prints Synapse's PID and URL) for a ratio.

    .venv/bin/python bench/quiet_chat.py --base-url http://127.0.0.1:8008 --server-pid PID \\
        [--users 4] [--messages 20] [--every 15] [--strace] [--json FILE]

The counting starts after the set-up and a settle pause, and ends `--tail` seconds after the last
receipt, so the writes that follow a message (anything done in the background) are counted.
Needs aiohttp (and strace for `--strace`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import time
from typing import Any

import aiohttp

from idle_clients import io_counters, register


async def member(session: aiohttp.ClientSession, base: str, token: str, user_id: str, room_id: str,
                 stop: asyncio.Event, receipts: list[float], read_delay: tuple[float, float],
                 rng: random.Random) -> None:
    """An app left open: long-polls /sync and marks every new message from others as read."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/_matrix/client/v3/sync", headers=headers) as resp:
        since = (await resp.json())["next_batch"]
    while not stop.is_set():
        async with session.get(f"{base}/_matrix/client/v3/sync", headers=headers,
                               params={"since": since, "timeout": "30000"}) as resp:
            body = await resp.json()
        since = body["next_batch"]
        events = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", [])
        seen = [e for e in events if e.get("type") == "m.room.message" and e.get("sender") != user_id]
        if seen:
            await asyncio.sleep(rng.uniform(*read_delay))     # until the person looks at it
            url = f"{base}/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{seen[-1]['event_id']}"
            async with session.post(url, json={}, headers=headers) as resp:
                await resp.read()
            receipts.append(time.monotonic())


# A row of `strace -c`'s table: % time, seconds, usecs/call, calls, [errors,] syscall.
SYNC_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+f(?:data)?sync$", re.M)


def start_strace(pid: int) -> subprocess.Popen[str] | None:
    if shutil.which("strace") is None:
        raise SystemExit("--strace needs strace")
    proc = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                            # let it attach to every thread
    return proc


def stop_strace(proc: subprocess.Popen[str]) -> int:
    """Disk syncs counted by strace -c."""
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return sum(int(m.group(1)) for m in SYNC_ROW.finditer(err))


async def run(a: argparse.Namespace) -> dict[str, Any]:
    base = a.base_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=90)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stamp = int(time.time())
        tokens = [await register(session, base, a.secret, f"chat{i}-{stamp}") for i in range(a.users)]
        users = []
        for token in tokens:
            async with session.get(f"{base}/_matrix/client/v3/account/whoami",
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
                users.append((await resp.json())["user_id"])
        async with session.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                                headers={"Authorization": f"Bearer {tokens[0]}"}) as resp:
            room_id = (await resp.json())["room_id"]
        for token in tokens[1:]:
            async with session.post(f"{base}/_matrix/client/v3/join/{room_id}", json={},
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()
        stop, receipts = asyncio.Event(), []
        rng = random.Random(a.seed)
        members = [asyncio.create_task(member(session, base, t, u, room_id, stop, receipts, a.read_delay, rng))
                   for t, u in zip(tokens, users)]
        await asyncio.sleep(a.settle)
        tracer = start_strace(a.server_pid) if a.strace else None
        bytes0, calls0 = io_counters(a.server_pid)
        started = time.monotonic()
        for n in range(a.messages):
            token = tokens[n % len(tokens)]
            async with session.put(f"{base}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/q{stamp}-{n}",
                                   json={"msgtype": "m.text", "body": f"message {n}"},
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()
            await asyncio.sleep(a.every)
        deadline = time.monotonic() + 30
        while len(receipts) < a.messages * (a.users - 1) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(a.tail)
        written, calls = io_counters(a.server_pid)
        elapsed = time.monotonic() - started
        syncs = stop_strace(tracer) if tracer is not None else None
        stop.set()
        await asyncio.gather(*members)       # each returns at its poll's end (<= 30 s)
    result: dict[str, Any] = {
        "users": a.users, "messages": a.messages, "every_s": a.every, "read_delay_s": list(a.read_delay),
        "receipts": len(receipts),
        "seconds": round(elapsed), "bytes": written - bytes0, "syscw": calls - calls0,
        "bytes_per_message": round((written - bytes0) / a.messages),
        "syscw_per_message": round((calls - calls0) / a.messages, 1),
    }
    if syncs is not None:
        result["disk_syncs"] = syncs
        result["disk_syncs_per_message"] = round(syncs / a.messages, 2)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--every", type=float, default=15.0, help="seconds between messages (default 15)")
    p.add_argument("--read-delay", type=float, nargs=2, default=(0.5, 5.0), metavar=("MIN", "MAX"),
                   help="seconds from a message's arrival to its read receipt, drawn per member (default 0.5 5)")
    p.add_argument("--seed", type=int, default=1, help="for the read delays (default 1)")
    p.add_argument("--settle", type=float, default=5.0, help="pause after the set-up (default 5 s)")
    p.add_argument("--tail", type=float, default=15.0, help="counted after the last receipt (default 15 s)")
    p.add_argument("--strace", action="store_true", help="count disk syncs with strace")
    p.add_argument("--secret", default="hsbench-shared-secret")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args()
    result = asyncio.run(run(a))
    line = (f"{result['messages']} messages, {result['receipts']} receipts, {result['seconds']} s: "
            f"{result['bytes_per_message'] / 1024:.1f} KiB and {result['syscw_per_message']} write syscalls "
            "per message")
    if "disk_syncs" in result:
        line += f", {result['disk_syncs_per_message']} disk syncs per message"
    print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
