"""Two matrix-nio clients with end-to-end encryption (vodozemac) talk in an encrypted room.

They upload device and one-time keys, query each other's keys, claim one-time keys to start Olm
sessions, share Megolm sessions over to-device messages and decrypt each other's messages. A new
device shows up in device_lists.changed, and exhausted one-time keys fall back to the fallback key.

Spec: client-server-api, "End-to-End Encryption", "Send-to-Device messaging".
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import vodozemac
from nio import (AsyncClient, AsyncClientConfig, JoinResponse, KeysUploadResponse, LoginResponse, MegolmEvent,
                 RoomCreateResponse, RoomMessageText, RoomSendResponse, SyncResponse)

from pocketserver.rooms.canonical import encode_canonical_json

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


async def login(homeserver, http, name: str, store: Path, *, register: bool = True) -> AsyncClient:
    if register:
        await homeserver.register_shared_secret(http, name, f"{name}-pw")
    store.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = AsyncClient(homeserver.base_url, name, store_path=str(store), config=config)
    assert isinstance(await client.login(f"{name}-pw"), LoginResponse)
    assert client.olm is not None
    assert isinstance(await client.keys_upload(), KeysUploadResponse)
    return client


async def sync(client: AsyncClient, timeout_ms: int = 0) -> SyncResponse:
    response = await client.sync(timeout=timeout_ms, since=client.next_batch)
    assert isinstance(response, SyncResponse), response
    if client.should_query_keys:
        await client.keys_query()
    return response


async def texts_until(client: AsyncClient, room_id: str, body: str) -> list:
    """Sync until a decrypted message with `body` arrives; returns every timeline event seen."""
    seen: list = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = await sync(client, 5_000)
        room = response.rooms.join.get(room_id)
        seen += room.timeline.events if room else []
        if any(isinstance(e, RoomMessageText) and e.body == body for e in seen):
            return seen
    raise AssertionError(f"{body!r} never arrived decrypted; saw {seen!r}")


async def raw(http: aiohttp.ClientSession, homeserver, client: AsyncClient, method: str, path: str,
              body: dict | None = None) -> dict:
    async with http.request(method, homeserver.base_url + path, json=body,
                            headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        data = await resp.json()
        assert resp.status == 200, data
        return data


def signed_fallback_key(client: AsyncClient) -> tuple[str, dict]:
    """A fallback key signed by the client's device key (nio itself does not upload fallback keys)."""
    public = vodozemac.Curve25519SecretKey().public_key().to_base64()
    key = {"key": public, "fallback": True}
    signature = client.olm.account._account.sign(encode_canonical_json(key)).to_base64()
    key["signatures"] = {client.user_id: {f"ed25519:{client.device_id}": signature}}
    return "signed_curve25519:AAAAFB", key


async def test_encrypted_room_between_two_nio_clients(homeserver, http, tmp_path: Path) -> None:
    alice = await login(homeserver, http, "e2e-alice", tmp_path / "alice")
    bob = await login(homeserver, http, "e2e-bob", tmp_path / "bob")
    clients = [alice, bob]
    try:
        await sync(alice)
        await sync(bob)
        created = await alice.room_create(name="Secrets", invite=[bob.user_id], initial_state=[ENCRYPTION])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await sync(bob)
        assert isinstance(await bob.join(room_id), JoinResponse)
        await sync(bob)
        await sync(alice)
        assert alice.rooms[room_id].encrypted

        # alice claims one of bob's one-time keys, starts an Olm session and shares a Megolm session.
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "the cake is in the oven"},
                                     ignore_unverified_devices=True)
        assert isinstance(sent, RoomSendResponse), sent
        events = await texts_until(bob, room_id, "the cake is in the oven")
        assert not any(isinstance(e, MegolmEvent) for e in events)
        decrypted = next(e for e in events if isinstance(e, RoomMessageText))
        assert decrypted.decrypted and decrypted.sender == alice.user_id

        # And back: bob's own Megolm session reaches alice over Olm.
        reply = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "don't tell anyone"},
                                    ignore_unverified_devices=True)
        assert isinstance(reply, RoomSendResponse), reply
        events = await texts_until(alice, room_id, "don't tell anyone")
        assert not any(isinstance(e, MegolmEvent) for e in events)

        # bob's one-time key count went down by the one alice claimed.
        response = await sync(bob)
        assert response.device_key_count.signed_curve25519 < bob.olm.account.max_one_time_keys

        # A new device of bob appears in alice's device_lists.changed.
        bob_phone = await login(homeserver, http, "e2e-bob", tmp_path / "bob-phone", register=False)
        clients.append(bob_phone)
        assert bob_phone.device_id != bob.device_id
        changed: set[str] = set()
        deadline = time.monotonic() + 10
        while bob.user_id not in changed and time.monotonic() < deadline:
            changed |= set((await alice.sync(timeout=5_000, since=alice.next_batch)).device_list.changed)
        assert bob.user_id in changed
        await alice.keys_query()
        assert bob_phone.device_id in alice.device_store[bob.user_id]

        # bob's phone syncs, and alice's next message reaches both of bob's devices.
        await sync(bob_phone)
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello phone"},
                                     ignore_unverified_devices=True)
        assert isinstance(sent, RoomSendResponse), sent
        await texts_until(bob_phone, room_id, "hello phone")
        await texts_until(bob, room_id, "hello phone")

        # Exhausting alice's one-time keys falls back to her fallback key, marked used in her sync.
        fallback_id, fallback = signed_fallback_key(alice)
        await raw(http, homeserver, alice, "POST", "/_matrix/client/v3/keys/upload", {"fallback_keys": {fallback_id: fallback}})
        assert (await raw(http, homeserver, alice, "GET", "/_matrix/client/v3/sync"))["device_unused_fallback_key_types"] == [
            "signed_curve25519"]
        claimed: list[str] = []
        for _ in range(alice.olm.account.max_one_time_keys + 1):
            body = await raw(http, homeserver, bob, "POST", "/_matrix/client/v3/keys/claim",
                             {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
            [(key_id, key)] = body["one_time_keys"][alice.user_id][alice.device_id].items()
            claimed.append(key_id)
            if key_id == fallback_id:
                assert key == fallback
                break
        assert claimed[-1] == fallback_id
        assert len(set(claimed)) == len(claimed)
        synced = await raw(http, homeserver, alice, "GET", "/_matrix/client/v3/sync")
        assert synced["device_unused_fallback_key_types"] == []
        assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0}
        # The fallback key keeps being handed out until it is replaced.
        body = await raw(http, homeserver, bob, "POST", "/_matrix/client/v3/keys/claim",
                         {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
        assert list(body["one_time_keys"][alice.user_id][alice.device_id]) == [fallback_id]
    finally:
        await asyncio.gather(*(c.close() for c in clients))
