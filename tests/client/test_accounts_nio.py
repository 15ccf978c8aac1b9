"""Accounts end to end with matrix-nio against a real server on loopback.

Spec: client-server-api, "Account registration and management", "Login", "Device management",
"Profiles".
"""
from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest
from nio import (AsyncClient, DevicesResponse, JoinResponse, LoginError, LoginResponse, LogoutResponse,
                 ProfileGetDisplayNameResponse, ProfileSetDisplayNameResponse, RegisterResponse,
                 WhoamiResponse)
from nio.responses import RegisterErrorResponse


def new_client(homeserver, user: str = "") -> AsyncClient:
    return AsyncClient(homeserver.base_url, user)


async def test_token_registration_login_profile_devices_logout(homeserver) -> None:
    created = homeserver.cli("token", "create", "--uses", "1")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()

    client = new_client(homeserver)
    try:
        resp = await client.register_with_token("alice", "correct horse", token, device_name="laptop")
        assert isinstance(resp, RegisterResponse), resp
        assert resp.user_id == "@alice:test.local"
        client.access_token, client.user_id, client.device_id = resp.access_token, resp.user_id, resp.device_id

        who = await client.whoami()
        assert isinstance(who, WhoamiResponse) and who.user_id == "@alice:test.local"
        assert who.device_id == resp.device_id

        name = await client.get_displayname()
        assert isinstance(name, ProfileGetDisplayNameResponse) and name.displayname == "alice"
        assert isinstance(await client.set_displayname("Alice A."), ProfileSetDisplayNameResponse)
        name = await client.get_displayname("@alice:test.local")
        assert name.displayname == "Alice A."

        devices = await client.devices()
        assert isinstance(devices, DevicesResponse)
        assert [d.id for d in devices.devices] == [resp.device_id]
        assert devices.devices[0].display_name == "laptop"

        old_token = client.access_token
        assert isinstance(await client.logout(), LogoutResponse)
        client.access_token = old_token
        assert not isinstance(await client.whoami(), WhoamiResponse)   # the token is gone

        client.access_token, client.user, client.device_id = "", "alice", ""
        login = await client.login("correct horse", device_name="phone")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == "@alice:test.local" and login.device_id != resp.device_id
        who = await client.whoami()
        assert isinstance(who, WhoamiResponse) and who.device_id == login.device_id
        devices = await client.devices()
        assert [d.display_name for d in devices.devices] == ["phone"]  # the logged-out device is gone
    finally:
        await client.close()

    # The token allowed one registration: a second sign-up with it is refused.
    other = new_client(homeserver)
    try:
        resp = await other.register_with_token("bob", "pw-of-bob", token)
        assert isinstance(resp, RegisterErrorResponse)
        assert resp.transport_response.status == 401   # the token stage failed
    finally:
        await other.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{homeserver.base_url}/_matrix/client/v3/register/available",
                            params={"username": "bob"}) as available:
            assert available.status == 200 and (await available.json()) == {"available": True}
        async with http.get(f"{homeserver.base_url}/_matrix/client/v1/register/"
                            "m.login.registration_token/validity", params={"token": token}) as valid:
            assert (await valid.json()) == {"valid": False}


async def test_shared_secret_registration_then_nio_login(homeserver, http: aiohttp.ClientSession) -> None:
    body = await homeserver.register_shared_secret(http, "carol", "carol-pass", admin=True)
    assert body["user_id"] == "@carol:test.local" and body["access_token"] and body["device_id"]
    listed = homeserver.cli("user", "list")
    assert "@carol:test.local  [admin]" in listed.stdout

    client = new_client(homeserver, "@carol:test.local")
    try:
        bad = await client.login("wrong password")
        assert isinstance(bad, LoginError) and bad.status_code == "M_FORBIDDEN"
        login = await client.login("carol-pass")
        assert isinstance(login, LoginResponse)
        devices = await client.devices()
        assert len(devices.devices) == 2    # the one from registration and this login
    finally:
        await client.close()


async def test_registration_without_token_is_refused(homeserver) -> None:
    client = new_client(homeserver)
    try:
        # nio's plain register() completes only m.login.dummy: the token stage is missing.
        resp = await client.register("mallory", "pw")
        assert isinstance(resp, RegisterErrorResponse)
    finally:
        await client.close()


async def test_cli_user_add_passwd_deactivate(homeserver) -> None:
    assert homeserver.cli("user", "add", "dave", "--password-file", "/dev/stdin",
                          stdin="first-pass\n").returncode == 0
    client = new_client(homeserver, "dave")
    try:
        assert isinstance(await client.login("first-pass"), LoginResponse)
        changed = homeserver.cli("user", "passwd", "dave", "--password-file", "/dev/stdin",
                                 stdin="second-pass\n")
        assert changed.returncode == 0, changed.stderr
        assert not isinstance(await client.whoami(), WhoamiResponse)   # devices were logged out
        assert isinstance(await client.login("first-pass"), LoginError)
        assert isinstance(await client.login("second-pass"), LoginResponse)
        assert homeserver.cli("user", "deactivate", "dave").returncode == 0
        assert not isinstance(await client.whoami(), WhoamiResponse)
        refused = await client.login("second-pass")
        assert isinstance(refused, LoginError) and refused.status_code in ("M_USER_DEACTIVATED", "M_FORBIDDEN")
    finally:
        await client.close()
    assert homeserver.cli("user", "passwd", "nobody", "--password-file", "/dev/stdin",
                          stdin="x\n").returncode == 1


async def test_cli_deactivate_while_serving_leaves_rooms_through_the_server(homeserver,
                                                                           http: aiohttp.ClientSession) -> None:
    """`user deactivate` while the server runs: the command deactivates the account and the
    running server (signalled) takes the user out of their rooms, on the room's one line of events,
    so the members, the state and the next event agree. serving_lock; README, commands."""
    alice, erin = [await homeserver.register_shared_secret(http, name, "pw") for name in ("dalice", "derin")]
    client = new_client(homeserver, alice["user_id"])
    client.access_token, client.device_id = alice["access_token"], alice["device_id"]
    erin_client = new_client(homeserver, erin["user_id"])
    erin_client.access_token, erin_client.device_id = erin["access_token"], erin["device_id"]
    try:
        room = (await client.room_create(invite=[erin["user_id"]])).room_id
        assert isinstance(await erin_client.join(room), JoinResponse)
        done = homeserver.cli("user", "deactivate", "derin")
        assert done.returncode == 0, done.stderr
        assert "running server" in done.stdout, done.stdout
        for _ in range(100):      # the server acts on the signal right away; give it a moment
            members = await client.joined_members(room)
            if erin["user_id"] not in {m.user_id for m in members.members}:
                break
            await asyncio.sleep(0.05)
        assert {m.user_id for m in members.members} == {alice["user_id"]}
        state = await client.room_get_state_event(room, "m.room.member", erin["user_id"])
        assert state.content["membership"] == "leave"
        sent = await client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "after"})
        async with http.get(f"{homeserver.base_url}/_matrix/client/v3/rooms/{room}/messages",
                            params={"dir": "b", "limit": "2"},
                            headers={"Authorization": f"Bearer {alice['access_token']}"}) as resp:
            chunk = (await resp.json())["chunk"]
        assert [e["event_id"] for e in chunk][0] == sent.event_id
        assert chunk[1]["type"] == "m.room.member" and chunk[1]["state_key"] == erin["user_id"]
        assert (chunk[1]["content"]["membership"], chunk[1]["sender"]) == ("leave", erin["user_id"])
        assert not isinstance(await erin_client.whoami(), WhoamiResponse)
    finally:
        await client.close()
        await erin_client.close()


def test_a_second_server_on_the_same_data_directory_is_refused(homeserver) -> None:
    """Two servers on one data directory would fork its rooms: the second is refused (before it
    tries the port, which the first holds too)."""
    second = subprocess.run([sys.executable, "-m", "pocketserver", "serve", "--config", str(homeserver.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "another pocketserver (process" in second.stderr and "is using this data directory" in second.stderr


@pytest.mark.parametrize("username", ["Upper-Case-Becomes-lower"])
async def test_usernames_are_lowercased(homeserver, http: aiohttp.ClientSession, username: str) -> None:
    body = await homeserver.register_shared_secret(http, username, "pw")
    assert body["user_id"] == f"@{username.lower()}:test.local"
