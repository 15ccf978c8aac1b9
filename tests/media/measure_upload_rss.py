"""Measure the server's peak RSS while several clients upload large files at once.

Not collected by pytest (a measurement, not a check). Run:

    .venv/bin/python tests/media/measure_upload_rss.py [--clients 5] [--megabytes 50]

It starts a real server in a temporary directory, registers one user per client, streams the
uploads concurrently (the clients never hold a whole file either), and prints the server's
VmHWM (peak resident set, from /proc) before and after, plus the largest VmRSS sampled.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import start_server  # noqa: E402

CHUNK = 1024 * 1024


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def body(seed: int, size: int) -> AsyncIterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        sent += len(piece)
        yield piece


async def main(clients: int, megabytes: int) -> None:
    size = megabytes * 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), log_level="warning")
        pid = server.process.pid
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
                tokens = [(await server.register_shared_secret(http, f"up{i}", f"pw-up{i}"))["access_token"]
                          for i in range(clients)]
                baseline = proc_kib(pid, "VmHWM")
                peak_sampled = 0
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal peak_sampled
                    while not done.is_set():
                        peak_sampled = max(peak_sampled, proc_kib(pid, "VmRSS"))
                        await asyncio.sleep(0.05)

                async def upload(i: int) -> str:
                    async with http.post(f"{server.base_url}/_matrix/media/v3/upload", data=body(i, size),
                                         headers={"Authorization": f"Bearer {tokens[i]}",
                                                  "Content-Length": str(size),
                                                  "Content-Type": "application/octet-stream"}) as resp:
                        assert resp.status == 200, await resp.text()
                        return (await resp.json())["content_uri"]

                sampler = asyncio.create_task(sample())
                started = time.perf_counter()
                uris = await asyncio.gather(*(upload(i) for i in range(clients)))
                elapsed = time.perf_counter() - started
                done.set()
                await sampler
                peak = proc_kib(pid, "VmHWM")
            stored = sum(p.stat().st_size for p in (server.data_dir / "media" / "content").rglob("*") if p.is_file())
        finally:
            server.stop()
    print(f"{clients} clients x {megabytes} MB uploaded in {elapsed:.1f} s ({len(set(uris))} media, "
          f"{stored / 1e6:.0f} MB stored)")
    print(f"server peak RSS (VmHWM): {peak / 1024:.1f} MiB; before the uploads {baseline / 1024:.1f} MiB; "
          f"largest sampled VmRSS {peak_sampled / 1024:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.megabytes))
