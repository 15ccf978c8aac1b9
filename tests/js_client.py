"""Run matrix-js-sdk (Node) as a test client: commands in, results and SDK events out, as JSON lines."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def ensure_js_sdk() -> None:
    """Install the locked matrix-js-sdk into tests/js/node_modules (npm ci), or skip without Node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for the matrix-js-sdk tests")
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)


class JsClient:
    """One matrix-js-sdk client in a Node subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> "JsClient":
        ensure_js_sdk()
        proc = await asyncio.create_subprocess_exec("node", str(JS_DIR / "driver.mjs"), cwd=JS_DIR,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    limit=16 * 1024 * 1024)
        return cls(proc)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        async for line in self._proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "id" in msg and msg["id"] in self._replies:
                self._replies.pop(msg["id"]).set_result(msg)
            elif "event" in msg:
                self.events.append(msg)
                self._changed.set()

    async def call(self, cmd: str, timeout: float = 30, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = future
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps({"id": self._next_id, "cmd": cmd, **args}) + "\n").encode())
        await self._proc.stdin.drain()
        reply = await asyncio.wait_for(future, timeout)
        if not reply.get("ok"):
            raise AssertionError(f"js-sdk {cmd} failed: {reply.get('error')}")
        return reply

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        """The first SDK event (past or future) matching `predicate`."""
        async def find() -> dict[str, Any]:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no matching js-sdk event within {timeout}s; last events: {self.events[-8:]}") from None

    async def close(self) -> None:
        try:
            await self.call("stop", timeout=5)
        except Exception:
            pass
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()
        self._reader.cancel()
