"""timestamp_to_event over HTTP: nearest event each way, visibility and refusals.

Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event".
"""
from __future__ import annotations

import itertools

import pytest

R3 = "/_matrix/client/v3/rooms"
R1 = "/_matrix/client/v1/rooms"


@pytest.fixture
def clock(monkeypatch):
    """Events get origin_server_ts 1000, 2000, 3000, ... in the order they are built (a new room's
    initial events share one)."""
    ticks = itertools.count(1000, 1000)
    monkeypatch.setattr("pocketserver.roomserver.now_ms", lambda: next(ticks))
    monkeypatch.setattr("pocketserver.roomserver.creation.now_ms", lambda: next(ticks))


async def send(api, token: str, room: str, body: str) -> tuple[str, int]:
    status, resp = await api.call("PUT", f"{R3}/{room}/send/m.room.message/{body}", {"body": body}, token=token)
    assert status == 200, resp
    _, event = await api.call("GET", f"{R3}/{room}/event/{resp['event_id']}", token=token)
    return resp["event_id"], event["origin_server_ts"]


async def at(api, token: str, room: str, ts: int | str, direction: str) -> tuple[int, dict]:
    return await api.call("GET", f"{R1}/{room}/timestamp_to_event", query={"ts": str(ts), "dir": direction},
                          token=token)


async def test_nearest_event_in_each_direction(api, clock) -> None:
    a = (await api.register("alice"))["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a)
    room = body["room_id"]
    first, first_ts = await send(api, a, room, "first")
    second, second_ts = await send(api, a, room, "second")
    assert second_ts > first_ts + 1

    assert await at(api, a, room, first_ts, "f") == (200, {"event_id": first, "origin_server_ts": first_ts})
    assert await at(api, a, room, first_ts, "b") == (200, {"event_id": first, "origin_server_ts": first_ts})
    assert (await at(api, a, room, first_ts + 1, "f"))[1]["event_id"] == second
    assert (await at(api, a, room, second_ts - 1, "b"))[1]["event_id"] == first
    assert (await at(api, a, room, second_ts + 10**9, "b"))[1]["event_id"] == second
    _, create = await at(api, a, room, 0, "f")
    _, state = await api.call("GET", f"{R3}/{room}/state/m.room.create", query={"format": "event"}, token=a)
    assert create["event_id"] == state["event_id"]
    status, body = await at(api, a, room, second_ts + 1, "f")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await at(api, a, room, 0, "b")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_history_visibility_applies(api, clock) -> None:
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {
        "preset": "public_chat", "initial_state": [{"type": "m.room.history_visibility",
                                                    "content": {"history_visibility": "joined"}}]}, token=a)
    room = body["room_id"]
    hidden, hidden_ts = await send(api, a, room, "before bob")
    assert (await api.call("POST", f"{R3}/{room}/join", {}, token=b))[0] == 200
    after, _ = await send(api, a, room, "after bob")
    assert (await at(api, a, room, hidden_ts, "f"))[1]["event_id"] == hidden
    _, body = await at(api, b, room, hidden_ts, "f")
    assert body["event_id"] != hidden            # Bob's own join, the first event he may see
    _, body = await at(api, b, room, hidden_ts, "b")
    assert body["event_id"] != hidden            # an earlier one; the room was "shared" until made "joined"
    del after


async def test_refusals(api, clock) -> None:
    a = (await api.register("alice"))["access_token"]
    c = (await api.register("carol"))["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, token=a)
    room = body["room_id"]
    status, body = await at(api, c, room, 0, "f")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await at(api, a, "!nope:test.local", 0, "f")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")     # "not in room", as Synapse
    for query, errcode in [({"dir": "f"}, "M_MISSING_PARAM"), ({"ts": "1"}, "M_MISSING_PARAM"),
                           ({"ts": "soon", "dir": "f"}, "M_INVALID_PARAM"),
                           ({"ts": "1", "dir": "x"}, "M_INVALID_PARAM"),
                           ({"ts": str(2**70), "dir": "f"}, "M_INVALID_PARAM"),
                           ({"ts": "-5", "dir": "b"}, "M_INVALID_PARAM")]:
        status, body = await api.call("GET", f"{R1}/{room}/timestamp_to_event", query=query, token=a)
        assert (status, body["errcode"]) == (400, errcode), query
    status, body = await api.call("GET", f"{R1}/{room}/timestamp_to_event", query={"ts": "1", "dir": "f"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
