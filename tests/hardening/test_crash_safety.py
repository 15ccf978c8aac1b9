"""No acknowledged write is lost: SIGKILL the server under concurrent sends, restart, check.

Spec: not a spec section; DESIGN.md, "The write path" (durable before 200).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import aiohttp

from tests.conftest import spawn_server, write_config

ROUNDS = int(os.environ.get("POCKETSERVER_CRASH_ROUNDS", "20"))


def launch(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return spawn_server(config, log, append=True)


async def wait_ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited during start"
        try:
            async with http.get(f"{base}/_matrix/client/versions") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    from tests.conftest import free_port
    port = free_port()
    config = write_config(tmp_path / "c.toml", tmp_path / "data", port)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(1234)
    acked: dict[str, str] = {}     # event_id -> body

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        proc = launch(config, log)
        await wait_ready(http, base, proc)
        from tests.conftest import RunningServer
        server = RunningServer(base, config, tmp_path / "data", proc)
        alice = await server.register_shared_secret(http, "alice", "pw")
        headers = {"Authorization": f"Bearer {alice['access_token']}"}
        rooms = []
        for i in range(3):
            async with http.post(f"{base}/_matrix/client/v3/createRoom", json={"name": f"r{i}"}, headers=headers) as r:
                rooms.append((await r.json())["room_id"])

        async def sender(worker: int, stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                body = f"w{worker}-{n}-{time.monotonic_ns()}"
                room = rooms[n % len(rooms)]
                try:
                    async with http.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{body}",
                                        json={"msgtype": "m.text", "body": body}, headers=headers) as resp:
                        if resp.status == 200:
                            acked[(await resp.json())["event_id"]] = body
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    await asyncio.sleep(0.01)

        for _ in range(ROUNDS):
            stop = asyncio.Event()
            workers = [asyncio.create_task(sender(w, stop)) for w in range(6)]
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stop.set()
            await asyncio.gather(*workers)
            proc = launch(config, log)
            await wait_ready(http, base, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    assert len(acked) > ROUNDS, "the load produced too few acknowledged sends to mean anything"
    conn = sqlite3.connect(tmp_path / "data" / "homeserver.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = dict(conn.execute("SELECT event_id, json FROM events WHERE type = 'm.room.message'").fetchall())
    missing = [e for e in acked if e not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    for event_id, body in acked.items():
        assert body in stored[event_id]
    # Stream order follows the DAG: each event comes after its prev_events.
    order = {e: s for e, s in conn.execute("SELECT event_id, stream_ordering FROM events")}
    for event_id, raw in conn.execute("SELECT event_id, json FROM events"):
        for prev in json.loads(raw)["prev_events"]:
            assert prev in order and order[prev] < order[event_id]
    conn.close()
