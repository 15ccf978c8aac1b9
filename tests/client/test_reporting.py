"""Reporting events, rooms and users over HTTP; reports are stored for the admin.

Spec: client-server-api, "Reporting content".
"""
from __future__ import annotations

from pocketserver.storage import reports as report_store

V3 = "/_matrix/client/v3"
R = f"{V3}/rooms"



async def test_report_event_stored_for_admin(api) -> None:
    a, b = await api.tokens("alice", "bob")
    _, body = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "rude"}, token=a)
    status, body = await api.call("POST", f"{R}/{room}/report/{sent['event_id']}",
                                  {"reason": "this makes me sad", "score": -100}, token=b)
    assert (status, body) == (200, {})
    status, body = await api.call("POST", f"{R}/{room}/report/{sent['event_id']}", {}, token=b)
    assert status == 200     # the reason is optional for events
    reports = await report_store.get_reports(api.server.db)
    assert [(r.kind, r.room_id, r.event_id, r.reporter, r.reason) for r in reports] == [
        ("event", room, sent["event_id"], "@bob:test.local", "this makes me sad"),
        ("event", room, sent["event_id"], "@bob:test.local", None)]
    assert reports[0].content == {"reason": "this makes me sad", "score": -100}


async def test_report_event_refusals(api) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    _, body = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat", "initial_state": [
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}]}, token=a)
    room = body["room_id"]
    _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "before bob"}, token=a)
    event = sent["event_id"]
    # Carol is not in the room: she cannot see the event, so for her it does not exist.
    status, body = await api.call("POST", f"{R}/{room}/report/{event}", {"reason": "x"}, token=c)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Bob joined after the event under `joined` history visibility: still hidden.
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    status, body = await api.call("POST", f"{R}/{room}/report/{event}", {"reason": "x"}, token=b)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("POST", f"{R}/{room}/report/$missing", {"reason": "x"}, token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("POST", f"{R}/!nope:test.local/report/{event}", {"reason": "x"}, token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    for bad in ({"reason": 5}, {"score": "high"}, {"score": 1.5}, {"score": True}):
        status, body = await api.call("POST", f"{R}/{room}/report/{event}", bad, token=a)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    status, body = await api.call("POST", f"{R}/{room}/report/{event}", raw=b"nope", token=a)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    status, body = await api.call("POST", f"{R}/{room}/report/{event}", {"reason": "x"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert await report_store.get_reports(api.server.db) == []


async def test_report_room_and_user(api) -> None:
    a, b = await api.tokens("alice", "bob")
    _, body = await api.call("POST", f"{V3}/createRoom", {}, token=a)
    room = body["room_id"]
    # Reporting a room does not need membership.
    status, body = await api.call("POST", f"{R}/{room}/report", {"reason": "spam room"}, token=b)
    assert (status, body) == (200, {})
    status, body = await api.call("POST", f"{R}/{room}/report", {"reason": ""}, token=b)
    assert status == 200     # may be blank
    status, body = await api.call("POST", f"{R}/!nope:test.local/report", {"reason": "x"}, token=b)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("POST", f"{R}/{room}/report", {}, token=b)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.call("POST", f"{R}/{room}/report", {"reason": "x"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")

    status, body = await api.call("POST", f"{V3}/users/@alice:test.local/report", {"reason": "mean"}, token=b)
    assert (status, body) == (200, {})
    status, body = await api.call("POST", f"{V3}/users/@ghost:test.local/report", {"reason": "x"}, token=b)
    assert (status, body) == (200, {})      # unknown users are not revealed, and not stored
    status, body = await api.call("POST", f"{V3}/users/not-a-user/report", {"reason": "x"}, token=b)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    reports = await report_store.get_reports(api.server.db)
    assert [(r.kind, r.room_id, r.target_user_id, r.reason) for r in reports] == [
        ("room", room, None, "spam room"), ("room", room, None, ""), ("user", None, "@alice:test.local", "mean")]
