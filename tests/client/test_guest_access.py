"""Guests in rooms: they join only rooms whose m.room.guest_access says can_join, leave those that
stop saying it, and change no profile field but their display name.

Spec: client-server-api, "Guest Access" (client and server behaviour).
"""
from __future__ import annotations

from typing import Any

import pytest

JOIN = "/_matrix/client/v3/join/{}"
STATE = "/_matrix/client/v3/rooms/{}/state/{}/{}"


@pytest.fixture
async def guests(make_api) -> Any:
    return await make_api(allow_guest_access=True)


async def _guest(api: Any) -> tuple[str, str]:
    status, body = await api.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert status == 200, body
    return body["user_id"], body["access_token"]


async def _joined(api: Any, token: str, room_id: str) -> set[str]:
    status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members", token=token)
    assert status == 200, body
    return set(body["joined"])


async def test_a_guest_joins_only_rooms_that_let_guests_in(guests) -> None:
    [bob] = await guests.tokens("bob")
    guest_id, guest = await _guest(guests)
    public = await guests.create_room(bob, preset="public_chat")        # guest_access: forbidden
    no_event = await guests.create_room(bob, preset="public_chat", initial_state=[])
    await guests.call("PUT", STATE.format(no_event, "m.room.guest_access", ""), {"guest_access": "nonsense"},
                      token=bob)
    open_room = await guests.create_room(bob, preset="public_chat", initial_state=[
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}}])
    for room_id in (public, no_event):
        status, body = await guests.call("POST", JOIN.format(room_id), {}, token=guest)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
        # Nor by sending the member event itself (guests may send state since v1.2).
        status, body = await guests.call("PUT", STATE.format(room_id, "m.room.member", guest_id),
                                         {"membership": "join"}, token=guest)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
        assert guest_id not in await _joined(guests, bob, room_id)
    status, body = await guests.call("POST", JOIN.format(open_room), {}, token=guest)
    assert status == 200, body
    status, body = await guests.call("PUT", f"/_matrix/client/v3/rooms/{open_room}/send/m.room.message/1",
                                     {"msgtype": "m.text", "body": "hello"}, token=guest)
    assert status == 200, body
    # A guest's state event (here its own member event again) is allowed too.
    status, body = await guests.call("PUT", STATE.format(open_room, "m.room.member", guest_id),
                                     {"membership": "join", "displayname": "Visitor"}, token=guest)
    assert status == 200, body

    # An invite does not let a guest into a room closed to guests (as Synapse).
    status, _ = await guests.call("POST", f"/_matrix/client/v3/rooms/{public}/invite", {"user_id": guest_id},
                                  token=bob)
    assert status == 200
    status, body = await guests.call("POST", JOIN.format(public), {}, token=guest)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body


async def test_guests_leave_a_room_that_stops_letting_them_in(guests) -> None:
    [bob, carol] = await guests.tokens("bob", "carol")
    room_id = await guests.create_room(bob, preset="private_chat")       # guest_access: can_join
    first_id, first = await _guest(guests)
    second_id, _ = await _guest(guests)
    for user_id in (first_id, second_id, "@carol:test.local"):
        status, _ = await guests.call("POST", f"/_matrix/client/v3/rooms/{room_id}/invite", {"user_id": user_id},
                                      token=bob)
        assert status == 200
    status, _ = await guests.call("POST", JOIN.format(room_id), {}, token=first)
    assert status == 200
    status, _ = await guests.call("POST", JOIN.format(room_id), {}, token=carol)
    assert status == 200

    status, body = await guests.call("PUT", STATE.format(room_id, "m.room.guest_access", ""),
                                     {"guest_access": "forbidden"}, token=bob)
    assert status == 200, body
    assert await _joined(guests, bob, room_id) == {"@bob:test.local", "@carol:test.local"}
    for guest_id in (first_id, second_id):       # the joined guest left; the invited one's invite is rejected
        status, member = await guests.call("GET", STATE.format(room_id, "m.room.member", guest_id), token=bob)
        assert (status, member["membership"]) == (200, "leave")
        status, event = await guests.call("GET", STATE.format(room_id, "m.room.member", guest_id), token=bob,
                                          query={"format": "event"})
        assert event["sender"] == guest_id       # they leave themselves, as in Synapse
    status, body = await guests.call("POST", JOIN.format(room_id), {}, token=first)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_guest_changes_only_its_display_name(guests) -> None:
    guest_id, guest = await _guest(guests)
    status, body = await guests.call("PUT", f"/_matrix/client/v3/profile/{guest_id}/displayname",
                                     {"displayname": "Visitor"}, token=guest)
    assert status == 200, body
    for method, body in (("PUT", {"avatar_url": "mxc://test.local/abc"}), ("DELETE", None)):
        status, answer = await guests.call(method, f"/_matrix/client/v3/profile/{guest_id}/avatar_url", body,
                                           token=guest)
        assert (status, answer["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), (method, answer)
    status, body = await guests.call("DELETE", f"/_matrix/client/v3/profile/{guest_id}/displayname", token=guest)
    assert status == 200, body


async def test_a_guest_writes_no_member_state_but_its_own_join_and_leave(guests) -> None:
    """/knock, /invite, /kick and /ban refuse guests; the same memberships written as state do too."""
    [bob] = await guests.tokens("bob")
    guest_id, guest = await _guest(guests)
    knockable = await guests.create_room(bob, room_version="10", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}])
    status, body = await guests.call("PUT", STATE.format(knockable, "m.room.member", guest_id), {"membership": "knock"},
                                      token=guest)
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), body
    room = await guests.create_room(bob, preset="public_chat", initial_state=[
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}}])
    assert (await guests.call("PUT", STATE.format(room, "m.room.member", guest_id), {"membership": "join"},
                              token=guest))[0] == 200
    for target, membership in (("@bob:test.local", "ban"), ("@bob:test.local", "leave"),
                               ("@nobody:test.local", "invite")):
        status, body = await guests.call("PUT", STATE.format(room, "m.room.member", target), {"membership": membership},
                                         token=guest)
        assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), (membership, body)
    assert (await guests.call("PUT", STATE.format(room, "m.room.member", guest_id), {"membership": "leave"},
                              token=guest))[0] == 200
