"""Key management over HTTP: /keys/upload, /keys/query, /keys/claim, /keys/changes, device lists in
/sync, and the refusals that keep keys honest.

Spec: client-server-api, "Key management API", "Extensions to /sync", "Tracking the device list for a user".
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any

import nacl.signing

from pocketserver.e2ee import one_time_keys
from pocketserver.rooms.hashing import encode_unpadded_base64
from pocketserver.rooms.signing import SigningKey, sign_json

K = "/_matrix/client/v3/keys"
SYNC = "/_matrix/client/v3/sync"
R = "/_matrix/client/v3/rooms"


class Device:
    """A fake E2EE device: an ed25519 key that signs its device keys and one-time keys."""

    def __init__(self, session: dict[str, Any], seed: int = 1) -> None:
        self.user_id, self.device_id, self.token = session["user_id"], session["device_id"], session["access_token"]
        self.key = SigningKey.from_seed(bytes([seed]) * 32, self.device_id)

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.key)

    def device_keys(self, **extra: Any) -> dict[str, Any]:
        return self.sign({"user_id": self.user_id, "device_id": self.device_id,
                          "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                          "keys": {f"ed25519:{self.device_id}": self.key.verify_key_base64,
                                   f"curve25519:{self.device_id}": encode_unpadded_base64(bytes(32))}, **extra})

    def one_time_keys(self, start: int, count: int) -> dict[str, Any]:
        return {f"signed_curve25519:K{i:04d}": self.sign({"key": f"otk{i:04d}"}) for i in range(start, start + count)}

    def fallback_key(self, key_id: str = "F1") -> dict[str, Any]:
        return {f"signed_curve25519:{key_id}": self.sign({"key": f"fallback-{key_id}", "fallback": True})}


async def new_device(api, name: str, seed: int = 1) -> Device:
    return Device(await api.register(name), seed)


async def login_again(api, user: str, seed: int) -> Device:
    status, body = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "pw",
        "initial_device_display_name": "phone"})
    assert status == 200, body
    return Device(body, seed)


async def upload(api, device: Device, body: dict[str, Any]) -> tuple[int, Any]:
    return await api.call("POST", f"{K}/upload", body, token=device.token)


async def share_room(api, alice: Device, bob: Device) -> str:
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=alice.token)
    room = body["room_id"]
    status, body = await api.call("POST", f"{R}/{room}/join", {}, token=bob.token)
    assert status == 200, body
    return room


async def test_upload_query_and_counts_in_sync(api) -> None:
    alice = await new_device(api, "alice")
    status, body = await upload(api, alice, {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 5),
                                             "fallback_keys": alice.fallback_key()})
    assert status == 200, body
    assert body == {"one_time_key_counts": {"signed_curve25519": 5}}
    status, body = await api.call("PUT", f"/_matrix/client/v3/devices/{alice.device_id}", {"display_name": "laptop"},
                                  token=alice.token)
    status, body = await api.call("POST", f"{K}/query", {"device_keys": {alice.user_id: []}}, token=alice.token)
    assert status == 200, body
    shown = body["device_keys"][alice.user_id][alice.device_id]
    assert shown["keys"] == alice.device_keys()["keys"]
    assert shown["signatures"] == alice.device_keys()["signatures"]
    assert shown["unsigned"] == {"device_display_name": "laptop"}
    assert body["failures"] == {}
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 5}
    assert synced["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # Re-uploading the same device keys is fine (a retry), and changes nothing.
    status, body = await upload(api, alice, {"device_keys": alice.device_keys()})
    assert status == 200 and body["one_time_key_counts"] == {"signed_curve25519": 5}


async def test_sync_always_reports_counts(api) -> None:
    alice = await new_device(api, "alice")
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert synced["device_unused_fallback_key_types"] == []


async def test_upload_refusals(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    # Only the owner uploads their keys: device keys naming another user or device are refused.
    status, body = await upload(api, alice, {"device_keys": bob.device_keys()})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # A bad self-signature.
    forged = alice.device_keys()
    forged["keys"][f"curve25519:{alice.device_id}"] = "changed"
    status, body = await upload(api, alice, {"device_keys": forged})
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    unsigned = {k: v for k, v in alice.device_keys().items() if k != "signatures"}
    status, body = await upload(api, alice, {"device_keys": unsigned})
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    for bad in ({"device_keys": "x"}, {"device_keys": {**alice.device_keys(), "keys": []}},
                {"one_time_keys": {"nocolon": "k"}}, {"one_time_keys": {"curve25519:A": 5}}, {"one_time_keys": []}):
        status, body = await upload(api, alice, bad)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_SIGNATURE"), (bad, body)
    assert (await upload(api, alice, {"device_keys": alice.device_keys()}))[0] == 200
    # Different device keys for a device that already has keys are refused.
    other = Device({"user_id": alice.user_id, "device_id": alice.device_id, "access_token": alice.token}, seed=9)
    status, body = await upload(api, alice, {"device_keys": other.device_keys()})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Signed one-time keys must be signed by the device.
    status, body = await upload(api, alice, {"one_time_keys": other.one_time_keys(0, 1)})
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    # A known one-time key ID with different content, and two fallback keys of one algorithm.
    assert (await upload(api, alice, {"one_time_keys": alice.one_time_keys(0, 2)}))[0] == 200
    assert (await upload(api, alice, {"one_time_keys": alice.one_time_keys(0, 2)}))[0] == 200
    changed = {"signed_curve25519:K0000": alice.sign({"key": "different"})}
    status, body = await upload(api, alice, {"one_time_keys": changed})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await upload(api, alice, {"fallback_keys": {**alice.fallback_key("A"), **alice.fallback_key("B")}})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("POST", f"{K}/upload", {})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.call("POST", f"{K}/upload", raw=b"not json", token=alice.token)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 2}


async def test_query_refusals_and_failures(api) -> None:
    alice = await new_device(api, "alice")
    status, body = await api.call("POST", f"{K}/query", {"device_keys": {"@x:elsewhere.example": [],
                                                                         "@nobody:test.local": []}}, token=alice.token)
    assert status == 200
    assert "elsewhere.example" in body["failures"]
    assert body["device_keys"] == {"@nobody:test.local": {}}
    # A user ID of bad grammar is left out, as Synapse does, not the whole query refused.
    status, body = await api.call("POST", f"{K}/query", {"device_keys": {"not-a-user": [], "@nobody:test.local": []}},
                                  token=alice.token)
    assert status == 200 and body["device_keys"] == {"@nobody:test.local": {}}
    for bad in ({}, {"device_keys": []}, {"device_keys": {alice.user_id: "x"}}):
        status, body = await api.call("POST", f"{K}/query", bad, token=alice.token)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), (bad, body)


async def test_claim_one_time_keys_then_fallback(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    await upload(api, alice, {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 2)})
    await upload(api, alice, {"one_time_keys": alice.one_time_keys(2, 1), "fallback_keys": alice.fallback_key()})
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"},
                              "@carol:elsewhere.example": {"DEV": "signed_curve25519"}}}
    claimed = []
    for _ in range(5):
        status, body = await api.call("POST", f"{K}/claim", want, token=bob.token)
        assert status == 200, body
        assert "elsewhere.example" in body["failures"]
        [(key_id, key)] = body["one_time_keys"][alice.user_id][alice.device_id].items()
        claimed.append(key_id)
        if key_id.endswith("F1"):
            assert key["fallback"] is True
    # The first upload's keys come first; the fallback key is handed out again until replaced.
    assert sorted(claimed[:2]) == ["signed_curve25519:K0000", "signed_curve25519:K0001"]
    assert claimed[2:] == ["signed_curve25519:K0002", "signed_curve25519:F1", "signed_curve25519:F1"]
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_unused_fallback_key_types"] == []
    # A new fallback key is unused again.
    await upload(api, alice, {"fallback_keys": alice.fallback_key("F2")})
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # Unknown devices and algorithms are simply missing.
    status, body = await api.call("POST", f"{K}/claim", {"one_time_keys": {
        alice.user_id: {"NODEVICE": "signed_curve25519"}, bob.user_id: {bob.device_id: "signed_curve25519"}}},
        token=bob.token)
    assert status == 200 and body["one_time_keys"] == {}
    # A user ID of bad grammar is left out (as Synapse), not the whole claim refused.
    status, body = await api.call("POST", f"{K}/claim", {"one_time_keys": {"bad": {}}}, token=bob.token)
    assert status == 200 and body["one_time_keys"] == {}
    for bad in ({}, {"one_time_keys": []}, {"one_time_keys": {alice.user_id: []}},
                {"one_time_keys": {alice.user_id: {alice.device_id: 1}}}):
        status, body = await api.call("POST", f"{K}/claim", bad, token=bob.token)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), (bad, body)


async def test_a_device_holds_a_bounded_number_of_one_time_keys(api, monkeypatch) -> None:
    monkeypatch.setattr(one_time_keys, "MAX_STORED_KEYS", 5)
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    status, _ = await upload(api, alice, {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 3)})
    assert status == 200
    # Three more would make six: the whole upload is refused, nothing of it kept.
    status, body = await upload(api, alice, {"one_time_keys": alice.one_time_keys(3, 3),
                                             "fallback_keys": alice.fallback_key()})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert synced["device_unused_fallback_key_types"] == []
    # Keys already held don't count twice; up to the cap is fine, and a claim makes room again.
    assert (await upload(api, alice, {"one_time_keys": alice.one_time_keys(0, 5)}))[1] == {
        "one_time_key_counts": {"signed_curve25519": 5}}
    assert (await upload(api, alice, {"one_time_keys": alice.one_time_keys(5, 1)}))[0] == 400
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    status, _ = await api.call("POST", f"{K}/claim", want, token=bob.token)
    assert status == 200
    assert (await upload(api, alice, {"one_time_keys": alice.one_time_keys(5, 1)}))[1] == {
        "one_time_key_counts": {"signed_curve25519": 5}}


async def test_concurrent_claims_never_share_a_key(api) -> None:
    alice = await new_device(api, "alice")
    await upload(api, alice, {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 12),
                              "fallback_keys": alice.fallback_key()})
    claimers = [await new_device(api, f"claimer{i}", seed=10 + i) for i in range(4)]
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    results = await asyncio.gather(*(api.call("POST", f"{K}/claim", want, token=claimers[i % 4].token)
                                     for i in range(20)))
    handed_out = []
    for status, body in results:
        assert status == 200, body
        handed_out += list(body["one_time_keys"][alice.user_id][alice.device_id])
    one_time = [k for k in handed_out if k != "signed_curve25519:F1"]
    assert sorted(one_time) == sorted(alice.one_time_keys(0, 12))     # each exactly once
    assert handed_out.count("signed_curve25519:F1") == 8               # then the fallback key
    _, synced = await api.call("GET", SYNC, token=alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0}


async def sync_since(api, device: Device, since: str) -> dict[str, Any]:
    status, body = await api.call("GET", SYNC, query={"since": since}, token=device.token)
    assert status == 200, body
    return body


async def test_device_lists_follow_keys_and_shared_rooms(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    carol = await new_device(api, "carol", seed=3)
    _, start = await api.call("GET", SYNC, token=alice.token)
    room = await share_room(api, alice, bob)
    # bob now shares a room with alice: he is "changed" for her, and she for him.
    first = await sync_since(api, alice, start["next_batch"])
    assert bob.user_id in first["device_lists"]["changed"]
    # bob's new device keys show up; carol, who shares no room, is not reported.
    await upload(api, bob, {"device_keys": bob.device_keys()})
    await upload(api, carol, {"device_keys": carol.device_keys()})
    second = await sync_since(api, alice, first["next_batch"])
    assert second["device_lists"] == {"changed": [bob.user_id], "left": []}
    status, changes = await api.call("GET", f"{K}/changes", query={"from": first["next_batch"],
                                                                  "to": second["next_batch"]}, token=alice.token)
    assert status == 200 and changes == {"changed": [bob.user_id], "left": []}
    # A second device of bob, and the deletion of a device, are changes too.
    phone = await login_again(api, "bob", seed=4)
    await upload(api, phone, {"device_keys": phone.device_keys()})
    third = await sync_since(api, alice, second["next_batch"])
    assert third["device_lists"]["changed"] == [bob.user_id]
    status, body = await api.call("POST", "/_matrix/client/v3/logout", {}, token=phone.token)
    assert status == 200, body
    fourth = await sync_since(api, alice, third["next_batch"])
    assert fourth["device_lists"]["changed"] == [bob.user_id]
    _, queried = await api.call("POST", f"{K}/query", {"device_keys": {bob.user_id: []}}, token=alice.token)
    assert list(queried["device_keys"][bob.user_id]) == [bob.device_id]
    # bob leaves the only shared room: he is "left" for alice.
    await api.call("POST", f"{R}/{room}/leave", {}, token=bob.token)
    fifth = await sync_since(api, alice, fourth["next_batch"])
    assert fifth["device_lists"]["left"] == [bob.user_id]
    assert bob.user_id not in fifth["device_lists"]["changed"]


async def test_a_second_shared_room_is_no_device_list_change(api) -> None:
    """Users who already share a room track each other: sharing or leaving one more room tells
    neither of them anything, and stores nothing for the pair; a newcomer is still reported."""
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    carol = await new_device(api, "carol", seed=3)
    first_room = await share_room(api, alice, bob)
    _, start = await api.call("GET", SYNC, token=alice.token)
    _, bob_start = await api.call("GET", SYNC, token=bob.token)
    rows = "SELECT COUNT(*) FROM device_list_observations"
    before = (await api.server.db.fetchone(rows))[0]

    second_room = await share_room(api, alice, bob)
    synced = await sync_since(api, alice, start["next_batch"])
    assert synced["device_lists"] == {"changed": [], "left": []}
    assert (await sync_since(api, bob, bob_start["next_batch"]))["device_lists"] == {"changed": [], "left": []}
    assert (await api.server.db.fetchone(rows))[0] == before

    # carol joins the second room: she is new to both of them, and they to her.
    status, body = await api.call("POST", f"{R}/{second_room}/join", {}, token=carol.token)
    assert status == 200, body
    synced = await sync_since(api, alice, synced["next_batch"])
    assert synced["device_lists"] == {"changed": [carol.user_id], "left": []}
    _, carol_view = await api.call("GET", SYNC, token=carol.token)
    # bob leaves the second room: alice still shares the first with him; carol shares none now.
    await api.call("POST", f"{R}/{second_room}/leave", {}, token=bob.token)
    synced = await sync_since(api, alice, synced["next_batch"])
    assert synced["device_lists"] == {"changed": [], "left": []}
    carol_after = await sync_since(api, carol, carol_view["next_batch"])
    assert carol_after["device_lists"] == {"changed": [], "left": [bob.user_id]}
    # ... and leaving the last shared room is a "left" again.
    await api.call("POST", f"{R}/{first_room}/leave", {}, token=bob.token)
    assert (await sync_since(api, alice, synced["next_batch"]))["device_lists"] == {"changed": [], "left": [bob.user_id]}


async def test_device_list_stream_keeps_each_users_latest_change(api) -> None:
    """A change of bob's devices replaces his earlier row in the stream, and a membership change a
    pair's earlier row of its kind: the stream grows with users and pairs, not with changes, and a
    sync from before them all, or from between them, still hears of bob."""
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    room = await share_room(api, alice, bob)
    _, start = await api.call("GET", SYNC, token=alice.token)
    await upload(api, bob, {"device_keys": bob.device_keys()})
    _, middle = await api.call("GET", SYNC, query={"since": start["next_batch"]}, token=alice.token)
    for seed in (4, 5):
        phone = await login_again(api, "bob", seed=seed)
        await upload(api, phone, {"device_keys": phone.device_keys()})
    status, body = await api.call("POST", "/_matrix/client/v3/logout", {}, token=phone.token)
    assert status == 200, body
    for since in (start, middle):
        assert (await sync_since(api, alice, since["next_batch"]))["device_lists"] == {"changed": [bob.user_id],
                                                                                      "left": []}
    changes = "SELECT COUNT(*) FROM device_list_changes WHERE user_id = ?"
    assert (await api.server.db.fetchone(changes, (bob.user_id,)))[0] == 1

    for _ in range(3):   # bob leaves the only room he shares with alice, and comes back
        await api.call("POST", f"{R}/{room}/leave", {}, token=bob.token)
        status, body = await api.call("POST", f"{R}/{room}/join", {}, token=bob.token)
        assert status == 200, body
    assert (await sync_since(api, alice, middle["next_batch"]))["device_lists"] == {"changed": [bob.user_id],
                                                                                  "left": []}
    pair = "SELECT kind FROM device_list_observations WHERE observer = ? AND subject = ? ORDER BY position"
    assert [r[0] for r in await api.server.db.fetchall(pair, (alice.user_id, bob.user_id))] == ["left", "changed"]
    assert [r[0] for r in await api.server.db.fetchall(pair, (bob.user_id, alice.user_id))] == ["left", "changed"]
    await api.call("POST", f"{R}/{room}/leave", {}, token=bob.token)
    assert (await sync_since(api, alice, middle["next_batch"]))["device_lists"] == {"changed": [],
                                                                                  "left": [bob.user_id]}


async def test_device_list_change_wakes_long_poll(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    await share_room(api, alice, bob)
    _, first = await api.call("GET", SYNC, token=alice.token)
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000"},
                                        token=alice.token))
    while not api.server.notifier.waiting(alice.user_id):
        await asyncio.sleep(0)
    await upload(api, bob, {"device_keys": bob.device_keys()})
    status, woke = await asyncio.wait_for(poll, 5)
    assert status == 200 and woke["device_lists"]["changed"] == [bob.user_id]


async def test_keys_changes_refusals(api) -> None:
    alice = await new_device(api, "alice")
    _, synced = await api.call("GET", SYNC, token=alice.token)
    token = synced["next_batch"]
    for query in ({}, {"from": token}, {"to": token}, {"from": "garbage", "to": token}):
        status, body = await api.call("GET", f"{K}/changes", query=query, token=alice.token)
        assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM"), (query, body)


async def test_encryption_cannot_be_turned_off(api) -> None:
    alice = await new_device(api, "alice")
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"initial_state": [
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]},
        token=alice.token)
    room = body["room_id"]
    url = f"{R}/{room}/state/m.room.encryption/"
    for content in ({}, {"algorithm": "m.none"}):
        status, body = await api.call("PUT", url, content, token=alice.token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    status, body = await api.call("PUT", url, {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 604800000},
                                  token=alice.token)
    assert status == 200, body


class CrossSigningKey:
    """A cross-signing key pair whose key ID is its public key."""

    def __init__(self, user_id: str, usage: str, seed: int) -> None:
        nacl_key = nacl.signing.SigningKey(bytes([seed]) * 32)
        self.public = encode_unpadded_base64(bytes(nacl_key.verify_key))
        self.key = SigningKey(f"ed25519:{self.public}", nacl_key)
        self.user_id = user_id
        self.body = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{self.public}": self.public}}

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.key)


def cross_signing_set(user_id: str, seed: int) -> tuple[CrossSigningKey, CrossSigningKey, CrossSigningKey]:
    master = CrossSigningKey(user_id, "master", seed)
    self_signing = CrossSigningKey(user_id, "self_signing", seed + 1)
    user_signing = CrossSigningKey(user_id, "user_signing", seed + 2)
    self_signing.body = master.sign(self_signing.body)
    user_signing.body = master.sign(user_signing.body)
    return master, self_signing, user_signing


def upload_body(keys: tuple[CrossSigningKey, ...], **extra: Any) -> dict[str, Any]:
    names = ("master_key", "self_signing_key", "user_signing_key")
    return {name: key.body for name, key in zip(names, keys) if key is not None} | extra


async def test_cross_signing_upload_and_uia(api) -> None:
    alice = await new_device(api, "alice")
    keys = cross_signing_set(alice.user_id, 20)
    url = f"{K}/device_signing/upload"
    # The first upload needs no UIA; a retry of the same keys needs none either.
    status, body = await api.call("POST", url, upload_body(keys), token=alice.token)
    assert status == 200, body
    status, body = await api.call("POST", url, upload_body(keys), token=alice.token)
    assert status == 200, body
    # New keys once a master key exists: password UIA.
    replacement = cross_signing_set(alice.user_id, 40)
    status, body = await api.call("POST", url, upload_body(replacement), token=alice.token)
    assert status == 401 and body["flows"] == [{"stages": ["m.login.password"]}], body
    auth = {"type": "m.login.password", "session": body["session"], "password": "wrong",
            "identifier": {"type": "m.id.user", "user": alice.user_id}}
    status, body = await api.call("POST", url, upload_body(replacement, auth=auth), token=alice.token)
    assert status == 401 and body["errcode"] == "M_FORBIDDEN", body
    auth["password"] = "pw"
    status, body = await api.call("POST", url, upload_body(replacement, auth=auth), token=alice.token)
    assert status == 200, body
    _, queried = await api.call("POST", f"{K}/query", {"device_keys": {alice.user_id: []}}, token=alice.token)
    assert queried["master_keys"][alice.user_id]["keys"] == replacement[0].body["keys"]
    assert queried["user_signing_keys"][alice.user_id] == replacement[2].body


async def test_cross_signing_upload_refusals(api) -> None:
    alice = await new_device(api, "alice")
    url = f"{K}/device_signing/upload"
    master, self_signing, user_signing = cross_signing_set(alice.user_id, 20)
    status, body = await api.call("POST", url, {"self_signing_key": self_signing.body}, token=alice.token)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    wrong_master = CrossSigningKey(alice.user_id, "master", 60)
    status, body = await api.call("POST", url, upload_body((wrong_master, self_signing)), token=alice.token)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    unsigned = CrossSigningKey(alice.user_id, "self_signing", 61)
    status, body = await api.call("POST", url, upload_body((master, unsigned)), token=alice.token)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    for bad in ({"master_key": "x"}, {"master_key": {**master.body, "usage": ["self_signing"]}},
                {"master_key": {**master.body, "user_id": "@bob:test.local"}},
                {"master_key": {**master.body, "keys": {"ed25519:a": "b"}}},
                {"master_key": {**master.body, "keys": {}}}):
        status, body = await api.call("POST", url, bad, token=alice.token)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), (bad, body)
    # A cross-signing public key may not equal one of the user's device IDs.
    status, body = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw",
        "device_id": master.public})
    assert status == 200, body
    status, body = await api.call("POST", url, upload_body((master,)), token=alice.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_signatures_upload_and_visibility(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    carol = await new_device(api, "carol", seed=3)
    await upload(api, alice, {"device_keys": alice.device_keys()})
    await upload(api, bob, {"device_keys": bob.device_keys()})
    a_master, a_ssk, a_usk = cross_signing_set(alice.user_id, 20)
    b_master, b_ssk, b_usk = cross_signing_set(bob.user_id, 30)
    url = f"{K}/device_signing/upload"
    assert (await api.call("POST", url, upload_body((a_master, a_ssk, a_usk)), token=alice.token))[0] == 200
    assert (await api.call("POST", url, upload_body((b_master, b_ssk, b_usk)), token=bob.token))[0] == 200
    _, start = await api.call("GET", SYNC, token=bob.token)
    await share_room(api, alice, bob)

    # alice's self-signing key signs her device; her device signs her master key; her user-signing
    # key signs bob's master key. A forged signature and an unknown key fail on their own.
    device_keys = {k: v for k, v in alice.device_keys().items() if k != "signatures"}
    signed_device = a_ssk.sign(device_keys)
    signed_master = alice.sign(dict(a_master.body))
    signed_bob = a_usk.sign(dict(b_master.body))
    forged = copy.deepcopy(signed_device)
    forged["signatures"][alice.user_id][f"ed25519:{a_ssk.public}"] = (
        b_ssk.sign(device_keys)["signatures"][bob.user_id][f"ed25519:{b_ssk.public}"])
    status, body = await api.call("POST", f"{K}/signatures/upload", {
        alice.user_id: {alice.device_id: signed_device, a_master.public: signed_master, "NOSUCHKEY": {"x": 1}},
        bob.user_id: {b_master.public: signed_bob, "other": signed_bob}}, token=alice.token)
    assert status == 200, body
    assert set(body["failures"]) == {alice.user_id, bob.user_id}
    assert set(body["failures"][alice.user_id]) == {"NOSUCHKEY"}
    assert set(body["failures"][bob.user_id]) == {"other"}
    status, body = await api.call("POST", f"{K}/signatures/upload", {alice.user_id: {alice.device_id: forged}},
                                  token=alice.token)
    assert body["failures"][alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    # The object must match the stored key.
    tampered = a_ssk.sign({**device_keys, "algorithms": ["x"]})
    status, body = await api.call("POST", f"{K}/signatures/upload", {alice.user_id: {alice.device_id: tampered}},
                                  token=alice.token)
    assert body["failures"][alice.user_id][alice.device_id]["errcode"] == "M_INVALID_PARAM"

    # bob sees alice's self-signing signature on her device and her device's signature on her
    # master key, but not her user-signing key or its signature of his master key.
    _, seen_by_bob = await api.call("POST", f"{K}/query", {"device_keys": {alice.user_id: [], bob.user_id: []}},
                                    token=bob.token)
    device_sigs = seen_by_bob["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{a_ssk.public}" in device_sigs
    master_sigs = seen_by_bob["master_keys"][alice.user_id]["signatures"][alice.user_id]
    assert f"ed25519:{alice.device_id}" in master_sigs
    assert alice.user_id not in seen_by_bob["user_signing_keys"]
    assert bob.user_id in seen_by_bob["user_signing_keys"]
    assert alice.user_id not in seen_by_bob["master_keys"][bob.user_id].get("signatures", {})
    assert seen_by_bob["self_signing_keys"][alice.user_id] == a_ssk.body
    # alice sees her own signature of bob's master key; carol does not.
    _, seen_by_alice = await api.call("POST", f"{K}/query", {"device_keys": {bob.user_id: []}}, token=alice.token)
    assert f"ed25519:{a_usk.public}" in seen_by_alice["master_keys"][bob.user_id]["signatures"][alice.user_id]
    _, seen_by_carol = await api.call("POST", f"{K}/query", {"device_keys": {bob.user_id: []}}, token=carol.token)
    assert alice.user_id not in seen_by_carol["master_keys"][bob.user_id].get("signatures", {})
    # alice's cross-signing changes reach bob's device list.
    synced = await sync_since(api, bob, start["next_batch"])
    assert alice.user_id in synced["device_lists"]["changed"]


async def test_keys_changes_reports_a_change_followed_by_a_later_one(api) -> None:
    """GET /keys/changes with a past `to` still reports a user who changed in (from, to] and
    again after `to` (the stream keeps each user's latest change only): over-reporting costs a key
    query, under-reporting a device. Spec: "GET /_matrix/client/v3/keys/changes"."""
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    await share_room(api, alice, bob)
    _, first = await api.call("GET", SYNC, token=alice.token)
    await upload(api, bob, {"device_keys": bob.device_keys()})
    _, second = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=alice.token)
    query = {"from": first["next_batch"], "to": second["next_batch"]}
    status, body = await api.call("GET", "/_matrix/client/v3/keys/changes", query=query, token=alice.token)
    assert (status, body) == (200, {"changed": [bob.user_id], "left": []})
    phone = await login_again(api, "bob", seed=4)
    await upload(api, phone, {"device_keys": phone.device_keys()})
    status, body = await api.call("GET", "/_matrix/client/v3/keys/changes", query=query, token=alice.token)
    assert (status, body) == (200, {"changed": [bob.user_id], "left": []})
