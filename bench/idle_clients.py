#!/usr/bin/env python3
"""What a homeserver writes to disk, and how often it wakes up, while its clients sit idle.

A family's server spends most of the day like this: phones and laptops connected, nobody
typing. Every client keeps a /sync long-poll open (30 s timeout, then the next), and whatever
the server writes meanwhile wears the SD card of a Raspberry Pi for nothing. This script
registers N users (shared-secret registration, as hsbench does) in one room, lets each long-poll
for the given time, and prints the server process's bytes written (/proc/PID/io `write_bytes`)
and write syscalls every 30 s, with the CPU time the server used and how often its threads were
woken (context switches, from /proc), then the rates per hour. `--clients 0` measures a server
that nobody uses at all. Run it against pocketserver and against Synapse
(`../shared/bench/synapse.sh start` prints Synapse's PID and URL) for a ratio.

    python3 bench/idle_clients.py --base-url http://127.0.0.1:8008 --server-pid PID \\
        [--clients 4] [--seconds 690] [--secret hsbench-shared-secret] [--json FILE]

The first minutes include real changes (each user's presence going from active to idle after
60 s, to unavailable after 5 min); the steady state is what follows. Needs aiohttp.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import time
from typing import Any

import aiohttp

SAMPLE_S = 30.0


def io_counters(pid: int) -> tuple[int, int]:
    """The process's (write_bytes, syscw) from /proc."""
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(": ", 1) for line in f.read().splitlines())
    return int(fields["write_bytes"]), int(fields["syscw"])


def cpu_counters(pid: int) -> tuple[float, int]:
    """The process's CPU seconds (user + system) and its threads' context switches, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:    # the thread ended meanwhile
            pass
    return seconds, switches


async def register(session: aiohttp.ClientSession, base: str, secret: str, name: str) -> str:
    """An access token for a new user, through Synapse's shared-secret admin API."""
    url = f"{base}/_synapse/admin/v1/register"
    async with session.get(url) as resp:
        nonce = (await resp.json())["nonce"]
    mac = hmac.new(secret.encode(), b"\x00".join([nonce.encode(), name.encode(), b"pw", b"notadmin"]),
                   hashlib.sha1).hexdigest()
    async with session.post(url, json={"nonce": nonce, "username": name, "password": "pw",
                                       "admin": False, "mac": mac}) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"registration failed: {body}")
        return body["access_token"]


async def long_poll(session: aiohttp.ClientSession, base: str, token: str, until: float) -> None:
    """What an idle client does: an initial sync, then back-to-back 30 s long-polls."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/_matrix/client/v3/sync", headers=headers) as resp:
        since = (await resp.json())["next_batch"]
    while time.monotonic() < until:
        async with session.get(f"{base}/_matrix/client/v3/sync", headers=headers,
                               params={"since": since, "timeout": "30000"}) as resp:
            since = (await resp.json())["next_batch"]


async def run(base: str, pid: int, clients: int, seconds: float, secret: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=90)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stamp = int(time.time())
        tokens = [await register(session, base, secret, f"idle{i}-{stamp}") for i in range(clients)]
        room_id = None
        if tokens:
            headers = {"Authorization": f"Bearer {tokens[0]}"}
            async with session.post(f"{base}/_matrix/client/v3/createRoom", headers=headers,
                                    json={"preset": "public_chat"}) as resp:
                room_id = (await resp.json())["room_id"]
        for token in tokens[1:]:
            async with session.post(f"{base}/_matrix/client/v3/join/{room_id}", json={},
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()
        until = time.monotonic() + seconds
        polls = [asyncio.create_task(long_poll(session, base, t, until)) for t in tokens]
        bytes0, calls0 = io_counters(pid)
        cpu0, switches0 = cpu_counters(pid)
        started = time.monotonic()
        samples = []
        while time.monotonic() < until:
            await asyncio.sleep(min(SAMPLE_S, max(0.0, until - time.monotonic())))
            written, calls = io_counters(pid)
            cpu, switches = cpu_counters(pid)
            samples.append({"at_s": round(time.monotonic() - started), "bytes": written - bytes0,
                            "syscw": calls - calls0, "cpu_s": round(cpu - cpu0, 2),
                            "context_switches": switches - switches0})
            print(f"{samples[-1]['at_s']:5d} s: {samples[-1]['bytes'] // 1024:6d} KiB written, "
                  f"{samples[-1]['syscw']:4d} write syscalls, {samples[-1]['cpu_s']:6.2f} s CPU, "
                  f"{samples[-1]['context_switches']:6d} context switches", flush=True)
        await asyncio.gather(*polls)
    elapsed = time.monotonic() - started
    last = samples[-1] if samples else {"bytes": 0, "cpu_s": 0.0, "context_switches": 0}
    return {"clients": clients, "seconds": round(elapsed), "bytes": last["bytes"],
            "bytes_per_hour": round(last["bytes"] * 3600 / elapsed),
            "cpu_s_per_hour": round(last["cpu_s"] * 3600 / elapsed, 1),
            "context_switches_per_hour": round(last["context_switches"] * 3600 / elapsed), "samples": samples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=690.0)
    p.add_argument("--secret", default="hsbench-shared-secret")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args()
    result = asyncio.run(run(a.base_url.rstrip("/"), a.server_pid, a.clients, a.seconds, a.secret))
    print(f"{result['clients']} idle clients, {result['seconds']} s: {result['bytes'] // 1024} KiB written, "
          f"{result['bytes_per_hour'] / 1024 / 1024:.2f} MiB per hour; {result['cpu_s_per_hour']} s of CPU "
          f"and {result['context_switches_per_hour']} context switches per hour")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
