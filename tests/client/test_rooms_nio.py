"""Rooms end to end with matrix-nio against a real server on loopback.

Spec: client-server-api, "Rooms", "Room membership", "Events", "Redactions", "Room aliases",
"Room Upgrades", "Knocking on rooms", "Restricted rooms".
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import aiohttp
import pytest
from nio import (AsyncClient, JoinedMembersResponse, JoinedRoomsResponse, JoinError, JoinResponse,
                 ProfileSetDisplayNameResponse, RoomBanResponse, RoomCreateResponse, RoomForgetResponse,
                 RoomGetEventResponse, RoomGetStateEventResponse, RoomGetStateResponse, RoomInviteResponse,
                 RoomKickResponse, RoomKnockResponse, RoomLeaveResponse, RoomMessagesResponse, RoomPutAliasResponse,
                 RoomPutStateError, RoomPutStateResponse, RoomRedactResponse, RoomResolveAliasResponse,
                 RoomSendError, RoomSendResponse, SyncResponse)
from nio.responses import RoomUnbanResponse, RoomUpgradeResponse
from nio.api import MessageDirection, RoomPreset, RoomVisibility

Login = Callable[[str], Awaitable[AsyncClient]]


@pytest.fixture
async def login(homeserver, http: aiohttp.ClientSession) -> AsyncIterator[Login]:
    """Register a user through the shared secret and give back a logged-in nio client."""
    clients: list[AsyncClient] = []

    async def make(name: str) -> AsyncClient:
        body = await homeserver.register_shared_secret(http, name, f"pw-{name}")
        client = AsyncClient(homeserver.base_url, body["user_id"])
        client.access_token, client.user_id, client.device_id = body["access_token"], body["user_id"], body["device_id"]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def raw(http: aiohttp.ClientSession, homeserver, client: AsyncClient, method: str, path: str,
              body: Any = None) -> tuple[int, Any]:
    async with http.request(method, f"{homeserver.base_url}{path}", json=body,
                            headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        return resp.status, await resp.json()


def ok(resp: Any, kind: type) -> Any:
    assert isinstance(resp, kind), resp
    return resp


async def test_create_invite_join_send_state_redact_paginate(login: Login) -> None:
    alice, bob = await login("n1alice"), await login("n1bob")
    room = ok(await alice.room_create(name="Family", topic="Dinner", preset=RoomPreset.private_chat),
              RoomCreateResponse).room_id
    ok(await alice.room_invite(room, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room), JoinResponse)
    ok(await bob.set_displayname("Bob B."), ProfileSetDisplayNameResponse)
    members = ok(await alice.joined_members(room), JoinedMembersResponse)
    assert {m.user_id: m.display_name for m in members.members} == {alice.user_id: "n1alice", bob.user_id: "Bob B."}
    assert room in ok(await bob.joined_rooms(), JoinedRoomsResponse).rooms

    sent = []
    for i in range(5):
        resp = ok(await bob.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"hello {i}"}),
                  RoomSendResponse)
        sent.append(resp.event_id)
    ok(await alice.room_put_state(room, "m.room.topic", {"topic": "Lunch"}), RoomPutStateResponse)
    topic = ok(await bob.room_get_state_event(room, "m.room.topic"), RoomGetStateEventResponse)
    assert topic.content == {"topic": "Lunch"}
    state = ok(await bob.room_get_state(room), RoomGetStateResponse)
    assert {e["type"] for e in state.events} >= {"m.room.create", "m.room.name", "m.room.topic", "m.room.member"}

    ok(await alice.room_redact(room, sent[0], reason="typo"), RoomRedactResponse)
    event = ok(await bob.room_get_event(room, sent[0]), RoomGetEventResponse)
    assert event.event.source["content"] == {}
    assert event.event.source["unsigned"]["redacted_because"]["content"]["reason"] == "typo"

    # Paginate backwards two at a time until the start of the room.
    bodies, token = [], ""
    for _ in range(20):
        page = ok(await alice.room_messages(room, start=token, limit=2), RoomMessagesResponse)
        bodies += [e.source["content"].get("body") for e in page.chunk if e.source["type"] == "m.room.message"]
        if not page.end or not page.chunk:
            break
        token = page.end
    assert bodies == ["hello 4", "hello 3", "hello 2", "hello 1", None]     # the first one was redacted

    ok(await alice.room_kick(room, bob.user_id, reason="bye"), RoomKickResponse)
    assert room not in ok(await bob.joined_rooms(), JoinedRoomsResponse).rooms
    ok(await alice.room_leave(room), RoomLeaveResponse)
    ok(await alice.room_forget(room), RoomForgetResponse)


async def test_aliases_and_upgrade(login: Login, homeserver, http: aiohttp.ClientSession) -> None:
    alice, bob = await login("n2alice"), await login("n2bob")
    room = ok(await alice.room_create(visibility=RoomVisibility.public, name="Town square", alias="square",
                                      room_version="11"), RoomCreateResponse).room_id
    ok(await alice.room_put_alias("#square-alt:test.local", room), RoomPutAliasResponse)
    resolved = ok(await bob.room_resolve_alias("#square:test.local"), RoomResolveAliasResponse)
    assert resolved.room_id == room
    ok(await bob.join("#square-alt:test.local"), JoinResponse)
    status, body = await raw(http, homeserver, bob, "GET", "/_matrix/client/v3/publicRooms")
    assert status == 200 and room in [r["room_id"] for r in body["chunk"]]

    status, body = await raw(http, homeserver, alice, "POST", f"/_matrix/client/v3/rooms/{room}/upgrade",
                             {"new_version": "12"})
    assert status == 200, body
    new_room = body["replacement_room"]
    tombstone = ok(await bob.room_get_state_event(room, "m.room.tombstone"), RoomGetStateEventResponse)
    assert tombstone.content["replacement_room"] == new_room
    assert ok(await bob.room_resolve_alias("#square:test.local"), RoomResolveAliasResponse).room_id == new_room
    ok(await bob.join(new_room), JoinResponse)
    create = ok(await bob.room_get_state_event(new_room, "m.room.create"), RoomGetStateEventResponse)
    assert create.content["predecessor"]["room_id"] == room and create.content["room_version"] == "12"
    status, body = await raw(http, homeserver, bob, "GET",
                             f"/_matrix/client/v1/room_summary/{quote('#square:test.local')}")
    assert status == 200 and body["room_id"] == new_room and body["membership"] == "join"

    # nio's own (client-side) upgrade also works against this server.
    other = ok(await alice.room_create(room_version="10"), RoomCreateResponse).room_id
    ok(await alice.room_send(other, "m.room.message", {"msgtype": "m.text", "body": "hi"}), RoomSendResponse)
    upgraded = ok(await alice.room_upgrade(other, "11"), RoomUpgradeResponse)
    assert upgraded.room_id != other


async def test_knock_then_invite(login: Login, homeserver, http: aiohttp.ClientSession) -> None:
    alice, bob = await login("n3alice"), await login("n3bob")
    room = ok(await alice.room_create(room_version="10", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]), RoomCreateResponse).room_id
    assert isinstance(await bob.join(room), JoinError)          # knock is not public
    ok(await bob.room_knock(room, reason="let me in"), RoomKnockResponse)
    member = ok(await alice.room_get_state_event(room, "m.room.member", bob.user_id), RoomGetStateEventResponse)
    assert member.content["membership"] == "knock" and member.content["reason"] == "let me in"
    ok(await alice.room_invite(room, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room), JoinResponse)
    # The raw endpoint, by alias, for another user.
    carol = await login("n3carol")
    ok(await alice.room_put_alias("#knockers:test.local", room), RoomPutAliasResponse)
    status, body = await raw(http, homeserver, carol, "POST",
                             f"/_matrix/client/v3/knock/{quote('#knockers:test.local')}", {})
    assert (status, body) == (200, {"room_id": room})


async def test_restricted_join(login: Login) -> None:
    alice, bob, carol = await login("n4alice"), await login("n4bob"), await login("n4carol")
    space = ok(await alice.room_create(space=True, visibility=RoomVisibility.public, preset=RoomPreset.public_chat),
               RoomCreateResponse).room_id
    ok(await bob.join(space), JoinResponse)
    room = ok(await alice.room_create(room_version="10", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "restricted",
                                                  "allow": [{"type": "m.room_membership", "room_id": space}]}}]),
              RoomCreateResponse).room_id
    ok(await bob.join(room), JoinResponse)
    member = ok(await alice.room_get_state_event(room, "m.room.member", bob.user_id), RoomGetStateEventResponse)
    assert member.content["join_authorised_via_users_server"] == alice.user_id
    refused = await carol.join(room)
    assert isinstance(refused, JoinError) and refused.status_code == "M_FORBIDDEN"
    assert refused.message == "You do not belong to any of the required rooms/spaces to join this room."
    # In the space, but nobody left here may invite: Synapse's 400 M_UNABLE_TO_GRANT_JOIN.
    ok(await carol.join(space), JoinResponse)
    ok(await alice.room_put_state(room, "m.room.power_levels", {"users": {alice.user_id: 100}, "invite": 50}),
       RoomPutStateResponse)
    ok(await alice.room_leave(room), RoomLeaveResponse)
    refused = await carol.join(room)
    assert isinstance(refused, JoinError) and refused.status_code == "M_UNABLE_TO_GRANT_JOIN", refused


@pytest.mark.parametrize("version", ["10", "12"])
async def test_member_state_is_checked_as_the_membership_endpoints_check_it(login: Login, version: str) -> None:
    """PUT /state/m.room.member/{userId} is no way round the membership endpoints' checks: a
    restricted room's allow list (a client's `join_authorised_via_users_server` is dropped), the
    invite checks, knocking or joining for someone else. The client's own content is kept (a
    per-room display name). Spec: client-server-api, "Restricted rooms", "Room membership"."""
    alice, bob, mallory = await login(f"ms{version}alice"), await login(f"ms{version}bob"), \
        await login(f"ms{version}mallory")
    space = ok(await alice.room_create(space=True, preset=RoomPreset.private_chat), RoomCreateResponse).room_id
    ok(await alice.room_invite(space, bob.user_id), RoomInviteResponse)
    ok(await bob.join(space), JoinResponse)
    room = ok(await alice.room_create(room_version=version, initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "restricted",
                                                  "allow": [{"type": "m.room_membership", "room_id": space}]}}]),
              RoomCreateResponse).room_id
    forged = await mallory.room_put_state(room, "m.room.member", {
        "membership": "join", "join_authorised_via_users_server": alice.user_id}, state_key=mallory.user_id)
    assert isinstance(forged, RoomPutStateError) and forged.status_code == "M_FORBIDDEN", forged
    members = ok(await alice.joined_members(room), JoinedMembersResponse)
    assert mallory.user_id not in {m.user_id for m in members.members}

    # bob is in the space: his join through state is authorised by this server, with his content.
    ok(await bob.room_put_state(room, "m.room.member", {"membership": "join", "displayname": "Bob here",
                                                        "join_authorised_via_users_server": bob.user_id},
                                state_key=bob.user_id), RoomPutStateResponse)
    member = ok(await alice.room_get_state_event(room, "m.room.member", bob.user_id), RoomGetStateEventResponse)
    assert member.content == {"membership": "join", "displayname": "Bob here",
                              "join_authorised_via_users_server": alice.user_id}

    # Invites through state: not to users who do not exist, nor to other servers.
    for target, code in (("@ghost:test.local", "M_NOT_FOUND"), ("@x:other.example", "M_FORBIDDEN")):
        refused = await alice.room_put_state(room, "m.room.member", {"membership": "invite"}, state_key=target)
        assert isinstance(refused, RoomPutStateError) and refused.status_code == code, (target, refused)
    # Nobody joins or knocks for someone else.
    for membership in ("join", "knock"):
        refused = await alice.room_put_state(room, "m.room.member", {"membership": membership},
                                             state_key=mallory.user_id)
        assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN", refused
    # Leave of someone else is a kick, of a banned user an unban; both under their rules.
    ok(await alice.room_put_state(room, "m.room.member", {"membership": "ban", "reason": "r"},
                                  state_key=mallory.user_id), RoomPutStateResponse)
    refused = await bob.room_put_state(room, "m.room.member", {"membership": "leave"}, state_key=mallory.user_id)
    assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN", refused
    ok(await alice.room_put_state(room, "m.room.member", {"membership": "leave"}, state_key=mallory.user_id),
       RoomPutStateResponse)
    member = ok(await alice.room_get_state_event(room, "m.room.member", mallory.user_id), RoomGetStateEventResponse)
    assert member.content == {"membership": "leave"}
    refused = await bob.room_put_state(room, "m.room.member", {"membership": "leave"}, state_key=alice.user_id)
    assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN", refused


async def test_authorization_refusals(login: Login) -> None:
    alice, bob, mallory = await login("n5alice"), await login("n5bob"), await login("n5mallory")
    room = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id

    # Non-member send.
    refused = await mallory.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "let me talk"})
    assert isinstance(refused, RoomSendError) and refused.status_code == "M_FORBIDDEN"

    # Insufficient power level.
    ok(await bob.join(room), JoinResponse)
    refused = await bob.room_put_state(room, "m.room.name", {"name": "Bob's room"})
    assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN"

    # A banned user cannot rejoin.
    ok(await mallory.join(room), JoinResponse)
    ok(await alice.room_ban(room, mallory.user_id, reason="spam"), RoomBanResponse)
    refused = await mallory.join(room)
    assert isinstance(refused, JoinError) and refused.status_code == "M_BAD_STATE"
    ok(await alice.room_unban(room, mallory.user_id), RoomUnbanResponse)
    ok(await mallory.join(room), JoinResponse)


async def test_each_event_carries_the_readers_membership_at_it(login: Login) -> None:
    """unsigned.membership (spec v1.11): what Element X reads to tell "sent before you joined"."""
    alice, bob = await login("n6alice"), await login("n6bob")
    room = ok(await alice.room_create(preset=RoomPreset.private_chat), RoomCreateResponse).room_id
    before = ok(await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "before"}),
                RoomSendResponse).event_id
    ok(await alice.room_invite(room, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room), JoinResponse)
    during = ok(await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "during"}),
                RoomSendResponse).event_id

    def memberships(events: list[Any]) -> dict[str, str]:
        return {e.source["event_id"]: e.source["unsigned"]["membership"] for e in events}

    def own(events: list[Any]) -> list[str]:
        return [e.source["unsigned"]["membership"] for e in events
                if e.source["type"] == "m.room.member" and e.source["state_key"] == bob.user_id]

    history = ok(await bob.room_messages(room, start="", limit=50, direction=MessageDirection.front),
                 RoomMessagesResponse).chunk
    seen = memberships(history)
    assert (seen[before], seen[during]) == ("leave", "join")
    assert own(history) == ["invite", "join"]          # each member event counts its own change
    synced = ok(await bob.sync(timeout=0, full_state=True), SyncResponse).rooms.join[room].timeline.events
    assert {k: v for k, v in memberships(synced).items() if k in (before, during)} == {before: "leave", during: "join"}
    # The creator has no membership yet at the create event, and is joined from their join on.
    chunk = ok(await alice.room_messages(room, start="", limit=50), RoomMessagesResponse).chunk
    assert {(e.source["type"] == "m.room.create", e.source["unsigned"]["membership"]) for e in chunk} == {
        (True, "leave"), (False, "join")}

    ok(await bob.room_leave(room), RoomLeaveResponse)
    after_leave = ok(await bob.room_messages(room, start="", limit=50, direction=MessageDirection.front),
                     RoomMessagesResponse).chunk
    assert own(after_leave) == ["invite", "join", "leave"]
    assert memberships(after_leave)[during] == "join"


async def test_a_rejected_invite_leaves_with_its_leave_event(login: Login) -> None:
    """The user's own rejection reaches their sync's leave section (as Synapse sends it), though the
    spec's visibility rules alone would hide it in a `shared` room the user never joined."""
    alice, bob = await login("n7alice"), await login("n7bob")
    room = ok(await alice.room_create(preset=RoomPreset.private_chat, invite=[bob.user_id]),
              RoomCreateResponse).room_id
    ok(await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "not for bob"}), RoomSendResponse)
    first = ok(await bob.sync(timeout=0), SyncResponse)
    assert room in first.rooms.invite
    ok(await bob.room_leave(room), RoomLeaveResponse)
    after = ok(await bob.sync(timeout=0, since=first.next_batch), SyncResponse)
    events = after.rooms.leave[room].timeline.events
    assert [(e.source["type"], e.source["state_key"], e.source["content"]["membership"]) for e in events] == [
        ("m.room.member", bob.user_id, "leave")]
