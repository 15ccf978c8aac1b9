"""Locking and suspending accounts: the admin API, what each state refuses, the command line, and
what matrix-nio and matrix-js-sdk make of it.

Spec: client-server-api, "Account moderation" ("Account locking", "Account suspension"),
"GET/PUT /_matrix/client/v1/admin/lock/{userId}", "GET/PUT /_matrix/client/v1/admin/suspend/{userId}".
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from nio import (AsyncClient, JoinError, LoginResponse, LogoutResponse, RoomLeaveResponse, RoomSendError,
                 SyncError, SyncResponse)

from tests.js_client import JsClient

V1, V3 = "/_matrix/client/v1", "/_matrix/client/v3"


def lock_path(user_id: str) -> str:
    return f"{V1}/admin/lock/{quote(user_id)}"


def suspend_path(user_id: str) -> str:
    return f"{V1}/admin/suspend/{quote(user_id)}"


async def make_admin(api, user_id: str) -> None:
    await api.server.db.write(lambda tx: tx.execute("UPDATE users SET admin = 1 WHERE user_id = ?", (user_id,)))


async def test_only_admins_moderate_and_only_local_non_admin_accounts(api) -> None:
    admin, alice, bob = [await api.register(n) for n in ("root", "alice", "bob")]
    await make_admin(api, admin["user_id"])
    root = admin["access_token"]

    # A non-admin is refused before any look-up, so it learns nothing of which accounts exist.
    for path in (lock_path, suspend_path):
        for target in ("@alice:test.local", "@nobody:test.local", "@x:elsewhere.example"):
            status, body = await api.call("GET", path(target), token=bob["access_token"])
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (path, target)
            status, body = await api.call("PUT", path(target), {"locked": True, "suspended": True},
                                          token=bob["access_token"])
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (path, target)
        status, body = await api.call("GET", path("@x:elsewhere.example"), token=root)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.call("GET", path("not-a-user-id"), token=root)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.call("GET", path("@nobody:test.local"), token=root)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await api.call("GET", path(admin["user_id"]), token=root)    # admins, oneself included
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    assert await api.call("GET", lock_path("@alice:test.local"), token=root) == (200, {"locked": False})
    assert await api.call("GET", suspend_path("@alice:test.local"), token=root) == (200, {"suspended": False})
    status, body = await api.call("PUT", lock_path("@alice:test.local"), {}, token=root)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.call("PUT", lock_path("@alice:test.local"), {"locked": "yes"}, token=root)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.call("PUT", suspend_path("@alice:test.local"), {"locked": True}, token=root)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    assert await api.call("GET", lock_path("@alice:test.local"), token=root) == (200, {"locked": False})

    # Deactivated accounts are not found.
    status, _ = await api.call("POST", f"{V3}/account/deactivate", {
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": "pw"}},
        token=bob["access_token"])
    assert status == 200
    status, body = await api.call("PUT", lock_path("@bob:test.local"), {"locked": True}, token=root)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # Capabilities tell admins they may moderate, and nobody else.
    status, caps = await api.call("GET", f"{V3}/capabilities", token=root)
    assert caps["capabilities"]["m.account_moderation"] == {"suspend": True, "lock": True}
    status, caps = await api.call("GET", f"{V3}/capabilities", token=alice["access_token"])
    assert "m.account_moderation" not in caps["capabilities"]


async def test_a_locked_account_keeps_its_sessions_but_can_only_log_out(api) -> None:
    admin, alice = await api.register("root"), await api.register("alice")
    await make_admin(api, admin["user_id"])
    root = admin["access_token"]
    status, login = await api.call("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw",
        "refresh_token": True})
    assert status == 200, login

    assert await api.call("PUT", lock_path("@alice:test.local"), {"locked": True}, token=root) == (
        200, {"locked": True})
    assert await api.call("GET", lock_path("@alice:test.local"), token=root) == (200, {"locked": True})
    locked = {"errcode": "M_USER_LOCKED", "error": "This account has been locked", "soft_logout": True}
    for method, path, body in (("GET", f"{V3}/account/whoami", None), ("GET", f"{V3}/sync", None),
                               ("POST", f"{V3}/createRoom", {}), ("GET", f"{V3}/capabilities", None)):
        assert await api.call(method, path, body, token=alice["access_token"]) == (401, locked), path
    # No new tokens: neither by password nor by refresh token.
    status, body = await api.call("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw"})
    assert (status, body["errcode"]) == (401, "M_USER_LOCKED")
    status, body = await api.call("POST", f"{V3}/refresh", {"refresh_token": login["refresh_token"]})
    assert (status, body["errcode"]) == (401, "M_USER_LOCKED")
    # Logging out still works.
    assert await api.call("POST", f"{V3}/logout", {}, token=login["access_token"]) == (200, {})

    # Unlocked, the session that was kept works again.
    assert await api.call("PUT", lock_path("@alice:test.local"), {"locked": False}, token=root) == (
        200, {"locked": False})
    status, who = await api.call("GET", f"{V3}/account/whoami", token=alice["access_token"])
    assert (status, who["user_id"]) == (200, "@alice:test.local")


async def test_a_lock_ends_a_waiting_long_poll(api) -> None:
    """A /sync or sliding-sync long-poll already waiting when the account is locked answers
    M_USER_LOCKED at once, not at its timeout."""
    admin = await api.register("root")
    await make_admin(api, admin["user_id"])
    sliding = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
    lists = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}}
    for name in ("alice", "bob"):
        token = (await api.register(name))["access_token"]
        if name == "alice":
            _, first = await api.call("GET", f"{V3}/sync", query={"timeout": "0"}, token=token)
            waiting = api.call("GET", f"{V3}/sync", query={"since": first["next_batch"], "timeout": "20000"},
                               token=token)
        else:
            _, first = await api.call("POST", sliding, lists, token=token)
            waiting = api.call("POST", sliding, lists, query={"pos": first["pos"], "timeout": "20000"}, token=token)
        poll = asyncio.create_task(waiting)
        await asyncio.sleep(0.3)
        assert not poll.done(), name
        started = time.monotonic()
        await api.call("PUT", lock_path(f"@{name}:test.local"), {"locked": True}, token=admin["access_token"])
        status, body = await asyncio.wait_for(poll, 10)
        assert (status, body["errcode"], body["soft_logout"]) == (401, "M_USER_LOCKED", True), name
        assert time.monotonic() - started < 5, name


async def test_a_suspended_account_reads_and_leaves_but_does_not_act(api) -> None:
    admin, alice, bob = await api.register("root"), await api.register("alice"), await api.register("bob")
    await make_admin(api, admin["user_id"])
    a, b = alice["access_token"], bob["access_token"]
    room = await api.create_room(b, preset="public_chat")
    other = await api.create_room(b, preset="public_chat")
    assert (await api.call("POST", f"{V3}/join/{room}", {}, token=a))[0] == 200
    status, mine = await api.call("PUT", f"{V3}/rooms/{room}/send/m.room.message/1", {"msgtype": "m.text",
                                  "body": "mine"}, token=a)
    assert status == 200
    status, theirs = await api.call("PUT", f"{V3}/rooms/{room}/send/m.room.message/2", {"msgtype": "m.text",
                                    "body": "theirs"}, token=b)
    assert status == 200
    # alice may redact anyone's events while she is not suspended.
    status, _ = await api.call("PUT", f"{V3}/rooms/{room}/state/m.room.power_levels", {
        "users": {"@alice:test.local": 50}, "redact": 50}, token=b)      # (bob created it: room v12)
    assert status == 200

    assert await api.call("PUT", suspend_path("@alice:test.local"), {"suspended": True},
                          token=admin["access_token"]) == (200, {"suspended": True})
    refused = [
        ("PUT", f"{V3}/rooms/{room}/send/m.room.message/3", {"msgtype": "m.text", "body": "hi"}),
        ("PUT", f"{V3}/rooms/{room}/send/m.room.redaction/4", {"redacts": theirs["event_id"]}),
        ("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "t"}),
        ("PUT", f"{V3}/rooms/{room}/redact/{theirs['event_id']}/5", {}),
        ("POST", f"{V3}/join/{other}", {}),
        ("POST", f"{V3}/rooms/{other}/join", {}),
        ("POST", f"{V3}/knock/{other}", {}),
        ("POST", f"{V3}/rooms/{room}/invite", {"user_id": "@root:test.local"}),
        ("POST", f"{V3}/rooms/{room}/kick", {"user_id": "@bob:test.local"}),
        ("POST", f"{V3}/createRoom", {}),
        ("POST", f"{V3}/rooms/{room}/upgrade", {"new_version": "11"}),
        ("PUT", f"{V3}/profile/@alice:test.local/displayname", {"displayname": "A"}),
        ("DELETE", f"{V3}/profile/@alice:test.local/displayname", None),
    ]
    for method, path, body in refused:
        status, answer = await api.call(method, path, body, token=a)
        assert (status, answer["errcode"]) == (403, "M_USER_SUSPENDED"), (path, answer)
    status, caps = await api.call("GET", f"{V3}/capabilities", token=a)
    assert caps["capabilities"]["m.set_displayname"] == {"enabled": False}
    assert caps["capabilities"]["m.profile_fields"] == {"enabled": False}

    # What stays open: reading, typing, redacting her own event, leaving.
    status, page = await api.call("GET", f"{V3}/rooms/{room}/messages", query={"dir": "b"}, token=a)
    assert status == 200 and {"mine", "theirs"} <= {e["content"].get("body") for e in page["chunk"]}
    assert (await api.call("GET", f"{V3}/sync", token=a))[0] == 200
    assert (await api.call("PUT", f"{V3}/rooms/{room}/typing/@alice:test.local",
                           {"typing": True, "timeout": 1000}, token=a))[0] == 200
    status, body = await api.call("PUT", f"{V3}/rooms/{room}/redact/{mine['event_id']}/6", {}, token=a)
    assert status == 200, body
    assert await api.call("POST", f"{V3}/rooms/{room}/leave", {}, token=a) == (200, {})

    # Lifted, she can act again.
    assert (await api.call("PUT", suspend_path("@alice:test.local"), {"suspended": False},
                           token=admin["access_token"]))[0] == 200
    assert (await api.call("POST", f"{V3}/join/{other}", {}, token=a))[0] == 200


async def test_the_command_line_and_matrix_nio(homeserver, http) -> None:
    """What an operator does on the server, and what a nio bot sees of it."""
    await homeserver.register_shared_secret(http, "noemi", "pw")
    owner = await homeserver.register_shared_secret(http, "owner", "pw")
    async with http.post(f"{homeserver.base_url}{V3}/createRoom", json={"preset": "public_chat"},
                         headers={"Authorization": f"Bearer {owner['access_token']}"}) as resp:
        room_id = (await resp.json())["room_id"]
    client = AsyncClient(homeserver.base_url, "noemi")
    try:
        assert isinstance(await client.login("pw"), LoginResponse)
        assert isinstance(await client.sync(timeout=0), SyncResponse)
        assert not isinstance(await client.join(room_id), JoinError)

        done = homeserver.cli("user", "suspend", "noemi")
        assert (done.returncode, done.stdout.strip()) == (0, "suspended @noemi:test.local"), done.stderr
        sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
        assert isinstance(sent, RoomSendError) and sent.status_code == "M_USER_SUSPENDED"
        assert isinstance(await client.sync(timeout=0), SyncResponse)
        assert isinstance(await client.room_leave(room_id), RoomLeaveResponse)
        joined = await client.join(room_id)
        assert isinstance(joined, JoinError) and joined.status_code == "M_USER_SUSPENDED"

        assert homeserver.cli("user", "unsuspend", "noemi").returncode == 0
        assert homeserver.cli("user", "lock", "noemi").returncode == 0
        listed = homeserver.cli("user", "list")
        assert "@noemi:test.local  [locked]" in listed.stdout.splitlines(), listed.stdout
        token = client.access_token
        synced = await client.sync(timeout=0)
        assert isinstance(synced, SyncError) and synced.status_code == "M_USER_LOCKED"
        assert homeserver.cli("user", "unlock", "noemi").returncode == 0
        client.access_token = token          # nio forgets its token on a soft logout; the server kept it
        assert isinstance(await client.sync(timeout=0), SyncResponse)
        assert homeserver.cli("user", "lock", "noemi").returncode == 0
        assert isinstance(await client.logout(), LogoutResponse)
        missing = homeserver.cli("user", "lock", "nobody")
        assert missing.returncode == 1 and "no such user" in missing.stderr
    finally:
        await client.close()


async def test_the_js_sdk_keeps_its_session_through_a_lock(homeserver, http) -> None:
    """A locked account's client keeps its session and retries (spec: "Account locking"); once
    unlocked, matrix-js-sdk's own sync loop picks up where it stopped."""
    admin = await homeserver.register_shared_secret(http, "jsroot", "pw", admin=True)
    await homeserver.register_shared_secret(http, "jslocked", "pw")
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="jslocked", password="pw")
        room_id = (await js.call("createRoom", name="Locked out", invite=[admin["user_id"]]))["room_id"]
        async with http.post(f"{homeserver.base_url}{V3}/join/{room_id}", json={}, headers=headers) as resp:
            assert resp.status == 200

        async def say(body: str, txn: str) -> None:
            async with http.put(f"{homeserver.base_url}{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                                json={"msgtype": "m.text", "body": body}, headers=headers) as resp:
                assert resp.status == 200

        async def lock(locked: bool) -> None:
            async with http.put(f"{homeserver.base_url}{lock_path('@jslocked:test.local')}",
                                json={"locked": locked}, headers=headers) as resp:
                assert (resp.status, await resp.json()) == (200, {"locked": locked})

        await lock(True)
        await say("while locked", "1")       # wakes the long-poll; the next /sync is refused
        await js.wait_for(lambda e: e["event"] == "sync_error" and e["errcode"] == "M_USER_LOCKED")
        await lock(False)
        await say("after the lock", "2")
        seen = await js.wait_for(lambda e: e["event"] == "timeline" and e.get("body") == "after the lock",
                                 timeout=30)
        assert seen["room_id"] == room_id
    finally:
        await js.close()
