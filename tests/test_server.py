"""The Server object: memory is given back once the server has been idle for a moment."""
from __future__ import annotations

import asyncio
from typing import Any

from pocketserver import server as server_module


async def test_idle_server_releases_memory_after_a_request(api: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(server_module, "IDLE_SECONDS", 0.05)
    released = asyncio.Event()
    release = api.server.db.release_memory

    async def spy() -> None:
        await release()
        released.set()
    monkeypatch.setattr(api.server.db, "release_memory", spy)
    status, _ = await api.call("GET", "/_matrix/client/versions")
    assert status == 200
    await asyncio.wait_for(released.wait(), timeout=10)
    status, body = await api.call("GET", "/_matrix/client/versions")   # still serving after it
    assert status == 200 and body["versions"]
