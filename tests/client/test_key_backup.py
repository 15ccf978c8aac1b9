"""Server-side key backups over HTTP: versions, keys with etag and count, the wrong-version error
and the rule for replacing a backed-up session.

Spec: client-server-api, "Server-side key backups" and the /room_keys endpoints.
"""
from __future__ import annotations

from typing import Any

V = "/_matrix/client/v3/room_keys/version"
KEYS = "/_matrix/client/v3/room_keys/keys"
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"


def key(fmi: int = 0, forwarded: int = 0, verified: bool = False, data: str = "a") -> dict[str, Any]:
    return {"first_message_index": fmi, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ephemeral": "e", "ciphertext": data, "mac": "m"}}


async def new_version(api, token: str, public_key: str = "pk1") -> str:
    status, body = await api.call("POST", V, {"algorithm": ALGORITHM, "auth_data": {"public_key": public_key}},
                                  token=token)
    assert status == 200, body
    return body["version"]


async def test_versions_lifecycle(api) -> None:
    alice = (await api.register("alice"))["access_token"]
    status, body = await api.call("GET", V, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    first = await new_version(api, alice)
    status, body = await api.call("GET", V, token=alice)
    assert status == 200
    assert body == {"algorithm": ALGORITHM, "auth_data": {"public_key": "pk1"}, "count": 0, "etag": "0",
                    "version": first}
    second = await new_version(api, alice, "pk2")
    assert int(second) > int(first)
    assert (await api.call("GET", V, token=alice))[1]["version"] == second
    assert (await api.call("GET", f"{V}/{first}", token=alice))[1]["auth_data"] == {"public_key": "pk1"}
    # Only auth_data may change.
    status, body = await api.call("PUT", f"{V}/{second}", {"algorithm": ALGORITHM, "auth_data": {"public_key": "pk3"},
                                                           "version": second}, token=alice)
    assert status == 200, body
    assert (await api.call("GET", f"{V}/{second}", token=alice))[1]["auth_data"] == {"public_key": "pk3"}
    status, body = await api.call("PUT", f"{V}/{second}", {"algorithm": "other", "auth_data": {}}, token=alice)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", f"{V}/{second}", {"algorithm": ALGORITHM, "auth_data": {}, "version": first},
                                  token=alice)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", f"{V}/99", {"algorithm": ALGORITHM, "auth_data": {}}, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Deleting the current version makes the previous one current; versions are not reused.
    assert (await api.call("DELETE", f"{V}/{second}", token=alice))[0] == 200
    assert (await api.call("GET", V, token=alice))[1]["version"] == first
    status, body = await api.call("GET", f"{V}/{second}", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("DELETE", f"{V}/{second}", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert int(await new_version(api, alice)) > int(second)
    # Backups are per user.
    bob = (await api.register("bob"))["access_token"]
    assert (await api.call("GET", f"{V}/{first}", token=bob))[0] == 404
    for bad in ({}, {"algorithm": ALGORITHM}, {"algorithm": 5, "auth_data": {}}, {"algorithm": ALGORITHM, "auth_data": []}):
        status, body = await api.call("POST", V, bad, token=alice)
        assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON"), (bad, body)
    for path in (f"{V}/abc", f"{V}/-1"):
        assert (await api.call("GET", path, token=alice))[0] == 404
    assert (await api.call("GET", V))[0] == 401


async def test_keys_etag_count_and_wrong_version(api) -> None:
    alice = (await api.register("alice"))["access_token"]
    status, body = await api.call("PUT", KEYS, {"rooms": {}}, query={"version": "1"}, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    old = await new_version(api, alice)
    current = await new_version(api, alice)
    body_in = {"rooms": {ROOM: {"sessions": {"s1": key(), "s2": key()}}}}
    status, body = await api.call("PUT", KEYS, body_in, query={"version": old}, token=alice)
    assert (status, body["errcode"], body["current_version"]) == (403, "M_WRONG_ROOM_KEYS_VERSION", current)
    status, body = await api.call("PUT", KEYS, body_in, token=alice)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, stored = await api.call("PUT", KEYS, body_in, query={"version": current}, token=alice)
    assert status == 200 and stored["count"] == 2
    # Uploading the same keys again changes nothing, so the etag stays.
    _, same = await api.call("PUT", KEYS, body_in, query={"version": current}, token=alice)
    assert same == stored
    _, info = await api.call("GET", V, token=alice)
    assert (info["count"], info["etag"]) == (2, stored["etag"])
    # Per-room and per-session forms.
    status, body = await api.call("PUT", f"{KEYS}/{ROOM}", {"sessions": {"s3": key()}}, query={"version": current},
                                  token=alice)
    assert status == 200 and body["count"] == 3 and body["etag"] != stored["etag"]
    status, body = await api.call("PUT", f"{KEYS}/{ROOM}/s4", key(), query={"version": current}, token=alice)
    assert status == 200 and body["count"] == 4
    _, everything = await api.call("GET", KEYS, query={"version": current}, token=alice)
    assert set(everything["rooms"][ROOM]["sessions"]) == {"s1", "s2", "s3", "s4"}
    _, room = await api.call("GET", f"{KEYS}/{ROOM}", query={"version": current}, token=alice)
    assert set(room["sessions"]) == {"s1", "s2", "s3", "s4"}
    _, one = await api.call("GET", f"{KEYS}/{ROOM}/s1", query={"version": current}, token=alice)
    assert one == key()
    _, empty_room = await api.call("GET", f"{KEYS}/!other:test.local", query={"version": current}, token=alice)
    assert empty_room == {"sessions": {}}
    status, body = await api.call("GET", f"{KEYS}/{ROOM}/nope", query={"version": current}, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", KEYS, query={"version": "42"}, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Deleting: one session, a room, everything.
    status, body = await api.call("DELETE", f"{KEYS}/{ROOM}/s1", query={"version": current}, token=alice)
    assert status == 200 and body["count"] == 3
    status, body = await api.call("DELETE", f"{KEYS}/{ROOM}", query={"version": current}, token=alice)
    assert status == 200 and body["count"] == 0
    await api.call("PUT", KEYS, body_in, query={"version": current}, token=alice)
    status, body = await api.call("DELETE", KEYS, query={"version": current}, token=alice)
    assert status == 200 and body["count"] == 0
    status, body = await api.call("DELETE", KEYS, query={"version": "42"}, token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Deleting a version deletes its keys.
    await api.call("PUT", KEYS, body_in, query={"version": current}, token=alice)
    await api.call("DELETE", f"{V}/{current}", token=alice)
    third = await new_version(api, alice)
    assert (await api.call("GET", V, token=alice))[1]["count"] == 0
    assert third != current


async def test_better_key_replaces_worse(api) -> None:
    alice = (await api.register("alice"))["access_token"]
    version = await new_version(api, alice)
    url, query = f"{KEYS}/{ROOM}/s", {"version": version}

    async def put_then_get(candidate: dict[str, Any]) -> dict[str, Any]:
        status, body = await api.call("PUT", url, candidate, query=query, token=alice)
        assert status == 200, body
        return (await api.call("GET", url, query=query, token=alice))[1]

    assert await put_then_get(key(fmi=5, forwarded=2, data="first")) == key(fmi=5, forwarded=2, data="first")
    assert (await put_then_get(key(fmi=6, data="later index")))["session_data"]["ciphertext"] == "first"
    assert (await put_then_get(key(fmi=5, forwarded=3, data="more forwarded")))["session_data"]["ciphertext"] == "first"
    assert (await put_then_get(key(fmi=5, forwarded=1, data="less forwarded")))["session_data"]["ciphertext"] == "less forwarded"
    assert (await put_then_get(key(fmi=2, forwarded=9, data="earlier")))["session_data"]["ciphertext"] == "earlier"
    assert (await put_then_get(key(fmi=9, forwarded=9, verified=True, data="verified")))["session_data"]["ciphertext"] == "verified"
    assert (await put_then_get(key(fmi=0, forwarded=0, data="unverified")))["session_data"]["ciphertext"] == "verified"


async def test_bad_key_data(api) -> None:
    alice = (await api.register("alice"))["access_token"]
    version = await new_version(api, alice)
    for bad in (
        {"rooms": []}, {"rooms": {ROOM: []}}, {"rooms": {ROOM: {"sessions": []}}},
        {"rooms": {ROOM: {"sessions": {"s": {**key(), "is_verified": "yes"}}}}},
        {"rooms": {ROOM: {"sessions": {"s": {**key(), "first_message_index": -1}}}}},
        {"rooms": {ROOM: {"sessions": {"s": {**key(), "session_data": "x"}}}}},
        {"rooms": {ROOM: {"sessions": {"s": {k: v for k, v in key().items() if k != "forwarded_count"}}}}},
    ):
        status, body = await api.call("PUT", KEYS, bad, query={"version": version}, token=alice)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), (bad, body)
