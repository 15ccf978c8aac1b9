"""matrix-js-sdk's SlidingSync class (MSC4186) against a real server: its room list, timelines and
long-polling, with a second user writing through matrix-nio's /sync client.

Spec: MSC4186 ("POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync").
"""
from __future__ import annotations

import asyncio

from nio import AsyncClient, LoginResponse

from tests.js_client import JS_DIR, JsClient, ensure_js_sdk


async def start_sliding_client() -> JsClient:
    ensure_js_sdk()
    proc = await asyncio.create_subprocess_exec("node", str(JS_DIR / "sliding.mjs"), cwd=JS_DIR,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                limit=16 * 1024 * 1024)
    return JsClient(proc)


async def test_js_sdk_sliding_sync(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "ss-alice", "ss-alice-pw")
    await homeserver.register_shared_secret(http, "ss-bob", "ss-bob-pw")
    bob = AsyncClient(homeserver.base_url, "ss-bob")
    js = None
    try:
        assert isinstance(await bob.login("ss-bob-pw"), LoginResponse)
        kitchen = (await bob.room_create(name="Kitchen", invite=["@ss-alice:test.local"])).room_id
        await bob.room_send(kitchen, "m.room.message", {"msgtype": "m.text", "body": "before alice"})

        js = await start_sliding_client()
        login = await js.call("login", baseUrl=homeserver.base_url, user="ss-alice", password="ss-alice-pw")
        assert login["user_id"] == "@ss-alice:test.local"
        first = await js.wait_for(lambda e: e["event"] == "response")
        assert first["lists"] == {"all": 1} and first["rooms"][kitchen]["initial"] is True
        assert set(first["extensions"]) >= {"to_device", "account_data", "typing", "receipts"}

        # A room the SDK creates arrives over sliding sync as initial, and its own message comes back.
        own = (await js.call("createRoom", name="Pantry"))["room_id"]
        await js.wait_for(lambda e: e["event"] == "response" and own in e["rooms"] and e["rooms"][own]["initial"])
        await js.call("send", roomId=own, body="note to self")
        await js.wait_for(lambda e: e["event"] == "timeline" and e["body"] == "note to self")

        # Alice accepts bob's invite from another session, then bob's message reaches the SDK live.
        async with http.post(f"{homeserver.base_url}/_matrix/client/v3/rooms/{kitchen}/join", json={},
                             headers={"Authorization": f"Bearer {await access_token(homeserver, http)}"}) as resp:
            assert resp.status == 200, await resp.text()
        await js.wait_for(lambda e: e["event"] == "timeline" and e["room_id"] == kitchen
                          and e["type"] == "m.room.member" and e["sender"] == "@ss-alice:test.local")
        await bob.room_send(kitchen, "m.room.message", {"msgtype": "m.text", "body": "hello over sliding sync"})
        seen = await js.wait_for(lambda e: e["event"] == "timeline" and e["body"] == "hello over sliding sync")
        assert seen["sender"] == "@ss-bob:test.local" and seen["room_id"] == kitchen
        rooms = {r["room_id"]: r for r in (await js.call("rooms"))["rooms"]}
        assert rooms[kitchen]["name"] == "Kitchen" and rooms[own]["name"] == "Pantry"
        assert "before alice" in rooms[kitchen]["bodies"] and rooms[kitchen]["bodies"][-1] == "hello over sliding sync"
    finally:
        if js is not None:
            await js.close()
        await bob.close()


async def access_token(homeserver, http) -> str:
    """A second session of alice, so the join does not go through the SDK under test."""
    async with http.post(f"{homeserver.base_url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "ss-alice"},
            "password": "ss-alice-pw"}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body["access_token"]


async def test_encryption_over_sliding_sync(homeserver, http, tmp_path) -> None:
    """The Rust crypto of matrix-js-sdk over sliding sync, as Element X's crypto runs: its room keys
    come in the to_device extension, device lists and one-time key counts in the e2ee extension.
    A matrix-nio user (vodozemac, /sync) and the sliding-sync user read each other's messages in an
    encrypted room. Spec: MSC4186 (extensions), client-server-api "End-to-End Encryption"."""
    from tests.client.test_e2ee_nio import login as nio_login, sync as nio_sync, texts_until
    await homeserver.register_shared_secret(http, "ss-carol", "ss-carol-pw")
    bob = await nio_login(homeserver, http, "ss-dave", tmp_path / "dave")
    js = None
    try:
        js = await start_sliding_client()
        await js.call("login", timeout=60, baseUrl=homeserver.base_url, user="ss-carol", password="ss-carol-pw",
                      crypto=True)
        await nio_sync(bob)
        room_id = (await js.call("createEncryptedRoom", name="Secret pantry", invite=[bob.user_id]))["room_id"]
        for _ in range(30):
            if room_id in bob.invited_rooms:
                break
            await nio_sync(bob, 1_000)
        assert getattr(await bob.join(room_id), "room_id", None) == room_id
        await js.wait_for(lambda e: e["event"] == "timeline" and e["room_id"] == room_id
                          and e["type"] == "m.room.member" and e["sender"] == bob.user_id)
        await nio_sync(bob)

        # nio claims one of carol's one-time keys (uploaded as the e2ee extension's counts asked)
        # and sends its room key to her device: it arrives in the to_device extension.
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "from /sync"},
                                   ignore_unverified_devices=True)
        assert getattr(sent, "event_id", None), sent
        got = await js.wait_for(lambda e: e["event"] == "decrypted" and e["body"] == "from /sync", timeout=20)
        assert got["sender"] == bob.user_id and got["type"] == "m.room.message" and not got["failure"]

        # And back: carol's device learnt bob's from the e2ee extension's device lists.
        await js.call("send", roomId=room_id, body="from sliding sync")
        events = await texts_until(bob, room_id, "from sliding sync")
        assert next(e for e in events if getattr(e, "body", None) == "from sliding sync").decrypted
    finally:
        if js is not None:
            await js.close()
        await bob.close()


async def test_clients_carry_on_across_a_server_restart(tmp_path) -> None:
    """A Raspberry Pi reboots: the js-sdk's sliding sync connection is gone with the old process
    (M_UNKNOWN_POS), and the SDK opens a new one by itself; a nio client's /sync token still
    holds, so it gets only what is new. Both see the message sent after the restart.
    Spec: MSC4186 (M_UNKNOWN_POS), client-server-api "Syncing"."""
    import aiohttp

    from tests.conftest import spawn_server, start_server, stop_process, wait_until_serving
    server = start_server(tmp_path)
    js = None
    bob = AsyncClient(server.base_url, "rs-bob")
    try:
        async with aiohttp.ClientSession() as http:
            await server.register_shared_secret(http, "rs-alice", "rs-alice-pw")
            await server.register_shared_secret(http, "rs-bob", "rs-bob-pw")
        assert isinstance(await bob.login("rs-bob-pw"), LoginResponse)
        js = await start_sliding_client()
        await js.call("login", baseUrl=server.base_url, user="rs-alice", password="rs-alice-pw")
        room_id = (await js.call("createRoom", name="Before the reboot"))["room_id"]
        await js.wait_for(lambda e: e["event"] == "response" and room_id in e["rooms"])
        first = await bob.sync(timeout=0)

        assert stop_process(server.process) == 0
        log = tmp_path / "server-2.log"
        server.process = spawn_server(server.config_path, log)
        wait_until_serving(server.base_url, server.process, log)

        seen_before = len(js.events)
        await js.call("send", roomId=room_id, body="after the reboot")
        # Not the local echo: a sliding sync response of the new process brings the message back.
        await js.wait_for(lambda e: js.events.index(e) >= seen_before and e["event"] == "response"
                          and e["rooms"].get(room_id, {}).get("timeline", 0) > 0, timeout=30)
        rooms = {r["room_id"]: r for r in (await js.call("rooms"))["rooms"]}
        assert rooms[room_id]["name"] == "Before the reboot"
        again = await bob.sync(timeout=0, since=first.next_batch)
        assert again.next_batch != first.next_batch and room_id not in again.rooms.join   # nothing of bob's changed
    finally:
        if js is not None:
            await js.close()
        await bob.close()
        server.stop()
