"""No acknowledged media or key upload is lost, and no half-written file becomes visible, when the
server is SIGKILLed under concurrent uploads.

Spec: client-server-api, "Content repository", "POST /_matrix/client/v3/keys/upload"; DESIGN.md,
"The write path" (durable before 200).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp

from tests.conftest import RunningServer, free_port, write_config
from tests.hardening.test_crash_safety import ROUNDS, launch, wait_ready


async def test_sigkill_during_media_and_key_uploads(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    config = write_config(tmp_path / "c.toml", data, port, rc_media_upload_per_second=1000.0,
                          rc_media_upload_burst=1000)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(99)
    uploads: dict[str, str] = {}          # mxc -> sha256 of what was acknowledged
    keys: set[str] = set()                # one-time key IDs acknowledged by /keys/upload

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        proc = launch(config, log)
        await wait_ready(http, base, proc)
        server = RunningServer(base, config, data, proc)
        alice = await server.register_shared_secret(http, "alice", "pw")
        headers = {"Authorization": f"Bearer {alice['access_token']}"}

        async def uploader(worker: int, stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                blob = os.urandom(rng.randint(1, 400_000)) + f"{worker}-{n}".encode()
                try:
                    async with http.post(f"{base}/_matrix/media/v3/upload", data=blob,
                                         headers={**headers, "Content-Type": "application/octet-stream"}) as resp:
                        if resp.status == 200:
                            uploads[(await resp.json())["content_uri"]] = hashlib.sha256(blob).hexdigest()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    await asyncio.sleep(0.01)

        async def key_uploader(stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                batch = {f"curve25519:k{time.monotonic_ns()}-{i}": f"key{n}-{i}" for i in range(5)}
                try:
                    async with http.post(f"{base}/_matrix/client/v3/keys/upload", json={"one_time_keys": batch},
                                         headers=headers) as resp:
                        if resp.status == 200:
                            keys.update(batch)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    await asyncio.sleep(0.01)

        for _ in range(max(5, ROUNDS // 2)):
            stop = asyncio.Event()
            workers = [asyncio.create_task(uploader(w, stop)) for w in range(3)]
            workers.append(asyncio.create_task(key_uploader(stop)))
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stop.set()
            await asyncio.gather(*workers)
            proc = launch(config, log)
            await wait_ready(http, base, proc)

        assert uploads and keys, "the load acknowledged nothing"
        # Every acknowledged upload downloads with exactly the acknowledged bytes.
        for mxc, digest in uploads.items():
            server_name, media_id = mxc[len("mxc://"):].split("/")
            async with http.get(f"{base}/_matrix/client/v1/media/download/{server_name}/{media_id}",
                                headers=headers) as resp:
                assert resp.status == 200, mxc
                assert hashlib.sha256(await resp.read()).hexdigest() == digest
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    # Every acknowledged one-time key is stored; the database is sound.
    conn = sqlite3.connect(data / "homeserver.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {f"{a}:{k}" for a, k in conn.execute("SELECT algorithm, key_id FROM e2e_one_time_keys")}
    conn.close()
    missing = keys - stored
    assert not missing, f"{len(missing)} acknowledged one-time keys lost"
    # No half-written file is visible: content files are all named by the hash of their bytes.
    for path in (data / "media" / "content").rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path} holds other bytes than its name"
