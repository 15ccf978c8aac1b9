"""The Server object: memory is given back once the server has been idle for a moment, and an
idle server sleeps."""
from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pocketserver import server as server_module
from tests.conftest import start_server


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


async def test_memory_is_released_again_only_once_the_server_grew(api: Any, monkeypatch: Any) -> None:
    """Idle clients' long-polls grow the server by little; a release after each round of them
    would cost more CPU than it gives back."""
    monkeypatch.setattr(server_module, "IDLE_SECONDS", 0.05)
    resident = 100 << 20
    monkeypatch.setattr(server_module, "resident_bytes", lambda: resident)
    releases = 0
    release = api.server.db.release_memory

    async def counted() -> None:
        nonlocal releases
        releases += 1
        await release()
    monkeypatch.setattr(api.server.db, "release_memory", counted)

    async def request_then_idle() -> None:
        assert (await api.call("GET", "/_matrix/client/versions"))[0] == 200
        await asyncio.sleep(0.4)
    await request_then_idle()
    assert releases == 1                                   # the first idle spell always releases
    resident += server_module.RELEASE_AFTER_GROWTH_BYTES // 2
    await request_then_idle()
    assert releases == 1                                   # grew by half the threshold: skipped
    resident += server_module.RELEASE_AFTER_GROWTH_BYTES
    await request_then_idle()
    assert releases == 2


def _context_switches(pid: int) -> int:
    """How often the process's threads have gone to sleep and been woken, in all."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_idle_server_wakes_for_nothing(tmp_path: Path) -> None:
    """No requests, nobody online: no thread of the server runs at all (a Raspberry Pi's CPU can
    stay asleep). The idle memory release and the presence timeouts used to poll every 1 s and 5 s."""
    server = start_server(tmp_path)
    try:
        with urllib.request.urlopen(f"{server.base_url}/_matrix/client/versions", timeout=5) as resp:
            assert resp.status == 200
        time.sleep(server_module.IDLE_SECONDS + 1.0)     # the memory release after that request
        before = _context_switches(server.process.pid)
        time.sleep(4.0)
        assert _context_switches(server.process.pid) - before == 0
        with urllib.request.urlopen(f"{server.base_url}/_matrix/client/versions", timeout=5) as resp:
            assert resp.status == 200                      # and it still answers at once
    finally:
        assert server.stop() == 0


async def test_what_is_kept_in_memory_is_written_in_one_commit_that_rides_along(api: Any) -> None:
    """Presence, devices' last-seen times and media download times wait for a commit that happens
    anyway, and go in one job each, all three in that one commit."""
    me = await api.register("robin")
    token, user = me["access_token"], me["user_id"]
    status, _ = await api.call("PUT", f"/_matrix/client/v3/presence/{user}/status",
                               {"presence": "online", "status_msg": "baking"}, token=token)
    assert status == 200
    status, uploaded = await api.call("POST", "/_matrix/media/v3/upload", raw=b"crumbs", token=token,
                                      headers={"Content-Type": "text/plain"})
    assert status == 200, uploaded
    media_id = uploaded["content_uri"].rsplit("/", 1)[1]
    downloaded = await api.client.get(f"/_matrix/client/v1/media/download/{api.server.config.server_name}/{media_id}",
                                      headers={"Authorization": f"Bearer {token}"})
    assert downloaded.status_code == 200 and await downloaded.get_data() == b"crumbs"
    stats = api.server.db.writer.stats
    commits = stats.commits
    writing = asyncio.create_task(api.server.write_kept_in_memory(within=60))
    await asyncio.sleep(0.2)
    assert not writing.done() and stats.commits == commits        # waiting for company
    status, _ = await api.call("PUT", f"/_matrix/client/v3/user/{user}/account_data/m.example", {"a": 1},
                               token=token)
    assert status == 200
    await asyncio.wait_for(writing, 5)
    assert stats.commits == commits + 1
    db = api.server.db
    assert (await db.fetchone("SELECT status_msg FROM presence WHERE user_id = ?", (user,)))[0] == "baking"
    assert (await db.fetchone("SELECT last_seen_ts FROM devices WHERE user_id = ?", (user,)))[0] > 0
    assert (await db.fetchone("SELECT last_access_ts FROM media WHERE media_id = ?", (media_id,)))[0] > 0


async def test_devices_show_last_seen_times_while_their_write_waits(api: Any) -> None:
    me = await api.register("wren")
    user, phone = me["user_id"], me["device_id"]
    status, laptop = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "wren"}, "password": "pw"})
    assert status == 200, laptop
    await asyncio.sleep(0.01)         # so the phone's latest use is later than what is stored
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=me["access_token"]))[0] == 200
    _, before = await api.call("GET", f"/_matrix/client/v3/devices/{phone}", token=laptop["access_token"])
    writing = asyncio.create_task(api.server.write_kept_in_memory(within=60))
    await asyncio.sleep(0.1)
    assert not writing.done()
    _, during = await api.call("GET", f"/_matrix/client/v3/devices/{phone}", token=laptop["access_token"])
    assert during["last_seen_ts"] == before["last_seen_ts"] > 0      # not the older stored time
    await api.call("PUT", f"/_matrix/client/v3/user/{user}/account_data/m.example", {}, token=laptop["access_token"])
    await asyncio.wait_for(writing, 5)
