"""matrix-js-sdk's Rust crypto (WASM, under Node) against a real server: cross-signing, secret storage,
key backup, an encrypted room between two js-sdk users, and a new device restoring the whole room
history from the key backup with the recovery key.

Spec: client-server-api, "End-to-End Encryption" ("Cross-signing", "Storage" (secret storage),
"Server-side key backups"), "User-Interactive Authentication API", "Send-to-Device messaging".
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.js_client import JS_DIR, JsClient, ensure_js_sdk

ALICE, BOB = "@jsc-alice:test.local", "@jsc-bob:test.local"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


class CryptoClient(JsClient):
    """A tests/js/crypto.mjs process; a call fails at once (not at its timeout) if Node exits."""

    async def _read(self) -> None:
        try:
            await super()._read()
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(AssertionError("the js-sdk process exited (see captured stderr)"))
            self._replies.clear()


async def start_crypto_client() -> CryptoClient:
    ensure_js_sdk()
    proc = await asyncio.create_subprocess_exec("node", str(JS_DIR / "crypto.mjs"), cwd=JS_DIR,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                limit=16 * 1024 * 1024)
    return CryptoClient(proc)


async def get(http: aiohttp.ClientSession, homeserver, token: str, path: str, **params: str) -> dict[str, Any]:
    async with http.get(homeserver.base_url + path, params=params,
                        headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        assert resp.status == 200, (path, resp.status, body)
        return body


async def post(http: aiohttp.ClientSession, homeserver, token: str, path: str, body: dict) -> dict[str, Any]:
    async with http.post(homeserver.base_url + path, json=body,
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json()
        assert resp.status == 200, (path, resp.status, data)
        return data


async def until(client: CryptoClient, cmd: str, predicate, timeout: float = 10, **args: Any) -> dict[str, Any]:
    """Repeat a driver command until its reply matches `predicate`."""
    deadline = time.monotonic() + timeout
    while not predicate(reply := await client.call(cmd, **args)):
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(0.1)
    return reply


async def encrypted_room(creator: CryptoClient, guest: CryptoClient, guest_id: str, name: str) -> str:
    """`creator` makes an encrypted room and invites `guest`, who joins; returns once both clients
    see the room as encrypted (their syncs have brought its state)."""
    room_id = (await creator.call("createEncryptedRoom", name=name, invite=[guest_id]))["room_id"]
    await guest.call("join", roomId=room_id)
    await creator.wait_for(lambda e: e["event"] == "timeline" and e["type"] == "m.room.member"
                           and e["sender"] == guest_id and e["room_id"] == room_id)
    for client in (creator, guest):
        await until(client, "isEncrypted", lambda r: r["encrypted"], roomId=room_id)
    return room_id


def decrypted(body: str, sender: str):
    return lambda e: (e["event"] == "decrypted" and e["body"] == body and e["sender"] == sender
                      and e["type"] == "m.room.message" and e["wire_type"] == "m.room.encrypted"
                      and not e["decryption_failure"])


async def test_rust_crypto_backup_and_restore_on_a_new_device(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "jsc-alice", "jsc-alice-pw")
    await homeserver.register_shared_secret(http, "jsc-bob", "jsc-bob-pw")
    clients: list[CryptoClient] = []
    try:
        alice = await start_crypto_client()
        clients.append(alice)
        bob = await start_crypto_client()
        clients.append(bob)
        a1 = await alice.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsc-alice",
                              password="jsc-alice-pw")
        b1 = await bob.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsc-bob", password="jsc-bob-pw")
        assert a1["user_id"] == ALICE and b1["user_id"] == BOB
        token = a1["access_token"]

        # The Rust crypto uploads the device keys (in the background, after the first sync): the server
        # serves them back.
        deadline = time.monotonic() + 10
        while True:
            query = await post(http, homeserver, token, "/_matrix/client/v3/keys/query",
                               {"device_keys": {ALICE: [], BOB: []}})
            if a1["device_id"] in query["device_keys"][ALICE] and b1["device_id"] in query["device_keys"][BOB]:
                break
            assert time.monotonic() < deadline, query
            await asyncio.sleep(0.1)
        keys = query["device_keys"][ALICE][a1["device_id"]]
        assert keys["keys"][f"ed25519:{a1['device_id']}"] == a1["ed25519"]
        assert keys["keys"][f"curve25519:{a1['device_id']}"] == a1["curve25519"]
        assert b1["device_id"] in query["device_keys"][BOB]

        # Cross-signing: the first upload of the keys needs no UIA...
        cs = await alice.call("bootstrapCrossSigning", reset=False)
        assert cs["uia"] == [{"needed": False}], cs
        assert cs["ready"] is True and cs["status"]["publicKeysOnDevice"] is True, cs
        assert cs["status"]["privateKeysCachedLocally"] == {"masterKey": True, "selfSigningKey": True,
                                                            "userSigningKey": True}, cs
        first_master = cs["master"]
        await until(alice, "crossSigningStatus", lambda cs: cs["ready"] and cs["device_cross_signed"])
        # ...replacing them does: the server asks for the password, which the callback gives.
        # A /keys/query sent before the new keys are uploaded and answered with the old ones makes the Rust
        # crypto drop its new private keys (matrix-org/matrix-rust-sdk#4728, a client race): so the device
        # first catches up with the server, and an attempt that lost the race is retried.
        for _ in range(3):
            await alice.call("settle")
            cs = await alice.call("bootstrapCrossSigning", reset=True)
            [round_] = cs["uia"]
            assert round_["needed"] is True and ["m.login.password"] in round_["flows"] and round_["session"], cs
            assert cs["master"] != first_master, cs
            cs = await until(alice, "crossSigningStatus", lambda cs: (
                cs["ready"] and cs["device_cross_signed"]) or not cs["status"]["privateKeysCachedLocally"]["masterKey"])
            if cs["ready"]:
                break
        assert cs["ready"] and cs["device_cross_signed"], cs
        query = await post(http, homeserver, token, "/_matrix/client/v3/keys/query", {"device_keys": {ALICE: []}})
        master = query["master_keys"][ALICE]
        assert master["keys"] == {f"ed25519:{cs['master']}": cs["master"]}
        assert "self_signing" in str(query["self_signing_keys"][ALICE]["usage"])
        assert "user_signing" in str(query["user_signing_keys"][ALICE]["usage"])
        # The device is signed by the new self-signing key.
        [self_signing_id] = query["self_signing_keys"][ALICE]["keys"]
        assert self_signing_id in query["device_keys"][ALICE][a1["device_id"]]["signatures"][ALICE]

        # Secret storage with a generated recovery key, and a new key backup.
        ss = await alice.call("bootstrapSecretStorage", timeout=60)
        assert ss["recovery_key"] and ss["ready"] is True, ss
        assert ss["backup_version"] and ss["backup_algorithm"] == BACKUP_ALGORITHM and ss["backup_trusted"], ss
        assert all(ss["status"]["secretStorageKeyValidityMap"].values()), ss
        version = await get(http, homeserver, token, "/_matrix/client/v3/room_keys/version")
        assert version["version"] == ss["backup_version"] and version["algorithm"] == BACKUP_ALGORITHM
        assert version["auth_data"]["public_key"] and ALICE in version["auth_data"]["signatures"]
        default_key = await get(http, homeserver, token,
                                f"/_matrix/client/v3/user/{ALICE}/account_data/m.secret_storage.default_key")
        key_id = default_key["key"]
        for secret in ("m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing",
                       "m.megolm_backup.v1"):
            stored = await get(http, homeserver, token, f"/_matrix/client/v3/user/{ALICE}/account_data/{secret}")
            assert set(stored["encrypted"][key_id]) == {"iv", "ciphertext", "mac"}, (secret, stored)

        # An encrypted room with bob, who joins.
        room_id = await encrypted_room(alice, bob, BOB, "Vault")

        # Both send; each decrypts the other's messages (Megolm sessions shared over Olm to-device).
        conversation = [(alice, ALICE, bob, "alice: the key is under the mat"),
                        (bob, BOB, alice, "bob: which mat?"),
                        (alice, ALICE, bob, "alice: the blue one"),
                        (bob, BOB, alice, "bob: got it")]
        for sender, sender_id, reader, body in conversation:
            await sender.call("send", roomId=room_id, body=body)
            await reader.wait_for(decrypted(body, sender_id), timeout=20)

        # The server only ever saw ciphertext.
        messages = await get(http, homeserver, token, f"/_matrix/client/v3/rooms/{room_id}/messages", dir="b",
                             limit="50")
        sent = [e for e in messages["chunk"] if "state_key" not in e]
        assert len(sent) == len(conversation) and all(
            e["type"] == "m.room.encrypted" and e["content"]["algorithm"] == "m.megolm.v1.aes-sha2" for e in sent)
        assert not any(body in str(messages) for *_, body in conversation)

        # Alice's device backs up its room keys (her outbound session and bob's) to /room_keys.
        deadline = time.monotonic() + 20
        while True:
            status = await alice.call("backupStatus")
            backed_up = await get(http, homeserver, token, "/_matrix/client/v3/room_keys/keys",
                                  version=ss["backup_version"])
            sessions = backed_up["rooms"].get(room_id, {}).get("sessions", {})
            if status["total"] and status["backed_up"] == status["total"] and len(sessions) >= 2:
                break
            assert time.monotonic() < deadline, (status, backed_up)
            await asyncio.sleep(0.2)
        assert status["version"] == ss["backup_version"]
        for session in sessions.values():
            assert set(session["session_data"]) == {"ephemeral", "ciphertext", "mac"}, session
            assert session["first_message_index"] == 0
        assert (await get(http, homeserver, token, "/_matrix/client/v3/room_keys/version"))["count"] == len(
            backed_up["rooms"][room_id]["sessions"])

        # Nobody who holds the keys stays online: the new device can only get them from the backup.
        for client in (alice, bob):
            await client.close()
        clients.clear()

        # Alice logs in on a new device with a fresh in-memory crypto store, and only the recovery key.
        alice2 = await start_crypto_client()
        clients.append(alice2)
        a2 = await alice2.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsc-alice",
                               password="jsc-alice-pw", recoveryKey=ss["recovery_key"], initialSyncLimit=1)
        assert a2["user_id"] == ALICE and a2["device_id"] != a1["device_id"]
        # Before the restore the device cannot read the one message its first sync brought.
        undecryptable = await alice2.wait_for(lambda e: e["event"] == "decrypted" and e["room_id"] == room_id
                                              and e["decryption_failure"])
        assert undecryptable["wire_type"] == "m.room.encrypted" and undecryptable["sender"] == BOB, undecryptable
        restored = await alice2.call("restoreFromRecoveryKey", timeout=60)
        assert restored["has_backup_key"] is True, restored
        assert restored["total"] == len(sessions) and restored["imported"] == restored["total"], restored

        # The whole history, scrolled back with /messages, decrypts on the new device.
        reply = await alice2.call("history", timeout=60, roomId=room_id)
        history = reply["events"]
        assert reply["live_before_scrollback"] < len(history), reply   # most of it came from /messages
        assert history[0]["type"] == "m.room.create", history
        encrypted = [e for e in history if e["encrypted"]]
        assert [e for e in encrypted if e["decryption_failure"]] == [], encrypted
        assert [(e["sender"], e["body"]) for e in encrypted] == [(s, b) for _, s, _, b in conversation]
        assert all(e["type"] == "m.room.message" and e["wire_type"] == "m.room.encrypted" for e in encrypted)

        # The new device verifies itself with the recovery key: cross-signing keys from secret storage
        # (no new keys, so no UIA), its signature uploaded; the key backup then becomes trusted and active.
        # (The Rust crypto imports private keys only once it has fetched the matching public ones.)
        await until(alice2, "crossSigningStatus", lambda cs: cs["status"]["publicKeysOnDevice"])
        verified = await alice2.call("verifyWithRecoveryKey", timeout=60)
        assert verified["uia"] == [] and verified["status"]["privateKeysCachedLocally"]["masterKey"], verified
        assert verified["backup_trusted"] is True and verified["backup_version"] == ss["backup_version"], verified
        await until(alice2, "crossSigningStatus", lambda cs: cs["ready"] and cs["device_cross_signed"])
        query = await post(http, homeserver, token, "/_matrix/client/v3/keys/query", {"device_keys": {ALICE: []}})
        [self_signing_id] = query["self_signing_keys"][ALICE]["keys"]
        assert self_signing_id in query["device_keys"][ALICE][a2["device_id"]]["signatures"][ALICE]
    finally:
        for client in clients:
            await client.close()


async def test_a_new_device_verified_with_emoji_by_the_first(homeserver, http) -> None:
    """Element's "Verify with another device": the new device asks, the first accepts, both show the
    same seven emoji and the user confirms on both; everything goes over to-device messages. The
    first device then signs the new one with the self-signing key, and hands it the cross-signing
    private keys over an Olm-encrypted secret request: the new device ends up cross-signed and
    holding the keys, as after a recovery-key verification.
    Spec: client-server-api, "Device verification" ("Short Authentication String (SAS) verification"),
    "Sharing keys between devices" (secrets), "Cross-signing"."""
    await homeserver.register_shared_secret(http, "jsc-carol", "jsc-carol-pw")
    user = "@jsc-carol:test.local"
    clients: list[CryptoClient] = []
    try:
        first = await start_crypto_client()
        clients.append(first)
        f1 = await first.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsc-carol", password="jsc-carol-pw")
        cs = await first.call("bootstrapCrossSigning", reset=False)
        assert cs["ready"], cs
        await until(first, "crossSigningStatus", lambda cs: cs["ready"] and cs["device_cross_signed"])

        second = await start_crypto_client()
        clients.append(second)
        s1 = await second.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsc-carol", password="jsc-carol-pw")
        assert not (await second.call("crossSigningStatus"))["device_cross_signed"]
        for client in (first, second):              # each has fetched the other's device keys
            await client.call("settle")

        await second.call("requestOwnVerification")
        request = await first.wait_for(lambda e: e["event"] == "verification_request")
        assert (request["user_id"], request["device_id"]) == (user, s1["device_id"]), request
        await first.call("acceptVerification")
        await second.wait_for(lambda e: e["event"] == "verification_phase" and e["phase"] == "Ready")
        await second.call("startSas")
        shown = [await c.wait_for(lambda e: e["event"] == "sas", timeout=20) for c in (first, second)]
        assert shown[0]["emoji"] == shown[1]["emoji"] and len(shown[0]["emoji"]) == 7, shown
        results = await asyncio.gather(first.call("confirmSas", timeout=30), second.call("confirmSas", timeout=30))
        assert [r["result"] for r in results] == ["done", "done"], results

        # The first device trusts the second, and signed it with the self-signing key on the server.
        await until(first, "deviceStatus", lambda d: d["cross_signed"], userId=user, deviceId=s1["device_id"])
        query = await post(http, homeserver, f1["access_token"], "/_matrix/client/v3/keys/query",
                           {"device_keys": {user: []}})
        [self_signing_id] = query["self_signing_keys"][user]["keys"]
        assert self_signing_id in query["device_keys"][user][s1["device_id"]]["signatures"][user]
        # The second received the cross-signing private keys (m.secret.request / m.secret.send).
        status = await until(second, "crossSigningStatus", lambda cs: cs["ready"] and cs["device_cross_signed"],
                             timeout=20)
        assert status["status"]["privateKeysCachedLocally"] == {"masterKey": True, "selfSigningKey": True,
                                                                "userSigningKey": True}, status
        assert (await second.call("deviceStatus", userId=user, deviceId=f1["device_id"]))["verified"] is True
    finally:
        for client in clients:
            await client.close()


async def test_users_verify_each_other_in_their_dm(homeserver, http) -> None:
    """Element's "Verify user": the request is a message in their encrypted DM room, the SAS steps
    are room events referring to it (m.reference), and once both confirm, each signs the
    other's master key with their user-signing key; the server serves the signatures, and each sees
    the other as verified. Spec: client-server-api, "Key verification framework" (in-room
    verification), "Cross-signing"."""
    for name in ("jsv-dana", "jsv-eve"):
        await homeserver.register_shared_secret(http, name, f"{name}-pw")
    dana_id, eve_id = "@jsv-dana:test.local", "@jsv-eve:test.local"
    clients: list[CryptoClient] = []
    try:
        dana, eve = await start_crypto_client(), await start_crypto_client()
        clients += [dana, eve]
        d1 = await dana.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsv-dana", password="jsv-dana-pw")
        await eve.call("login", timeout=60, baseUrl=homeserver.base_url, user="jsv-eve", password="jsv-eve-pw")
        for client in (dana, eve):
            assert (await client.call("bootstrapCrossSigning", reset=False))["ready"]
            await until(client, "crossSigningStatus", lambda cs: cs["ready"] and cs["device_cross_signed"])
        room_id = await encrypted_room(dana, eve, eve_id, "dana and eve")
        for client in (dana, eve):
            await client.call("settle")
        assert (await dana.call("userStatus", userId=eve_id))["cross_signing_verified"] is False

        await dana.call("requestUserVerification", userId=eve_id, roomId=room_id)
        request = await eve.wait_for(lambda e: e["event"] == "verification_request", timeout=20)
        assert request["user_id"] == dana_id, request
        await eve.call("acceptVerification")
        await dana.wait_for(lambda e: e["event"] == "verification_phase" and e["phase"] == "Ready", timeout=20)
        await dana.call("startSas")
        shown = [await c.wait_for(lambda e: e["event"] == "sas", timeout=20) for c in (dana, eve)]
        assert shown[0]["emoji"] == shown[1]["emoji"] and len(shown[0]["emoji"]) == 7, shown
        results = await asyncio.gather(dana.call("confirmSas", timeout=30), eve.call("confirmSas", timeout=30))
        assert [r["result"] for r in results] == ["done", "done"], results

        await until(dana, "userStatus", lambda s: s["cross_signing_verified"], userId=eve_id)
        await until(eve, "userStatus", lambda s: s["cross_signing_verified"], userId=dana_id)
        # dana's user-signing key signed eve's master key, and the server shows it to dana.
        query = await post(http, homeserver, d1["access_token"], "/_matrix/client/v3/keys/query",
                           {"device_keys": {eve_id: [], dana_id: []}})
        [dana_usk] = query["user_signing_keys"][dana_id]["keys"]
        assert dana_usk in query["master_keys"][eve_id]["signatures"].get(dana_id, {}), query["master_keys"][eve_id]
        # The verification went through the room: its steps are events referring to the request.
        messages = await get(http, homeserver, d1["access_token"], f"/_matrix/client/v3/rooms/{room_id}/messages",
                             dir="f", limit="50")
        sent = [e for e in messages["chunk"] if "state_key" not in e]
        [request_event] = [e for e in sent if e["content"].get("msgtype") == "m.key.verification.request"]
        steps = [e for e in sent if e["type"].startswith("m.key.verification.")]
        assert [e["type"] for e in steps][:3] == ["m.key.verification.ready", "m.key.verification.start",
                                                 "m.key.verification.accept"], steps
        assert all(e["content"]["m.relates_to"] == {"rel_type": "m.reference", "event_id": request_event["event_id"]}
                   for e in steps), steps
        related = await get(http, homeserver, d1["access_token"],
                            f"/_matrix/client/v1/rooms/{room_id}/relations/{request_event['event_id']}/m.reference",
                            limit="50")
        assert {e["event_id"] for e in related["chunk"]} == {e["event_id"] for e in steps}
    finally:
        for client in clients:
            await client.close()
