"""A bot's view: mautrix-python (the library maubot and the mautrix bridges are built on) against a
real server on loopback.

mautrix parses every response into its own typed classes and raises when a field it needs is
missing or has the wrong type, so these tests also hold our response shapes to a second client's
reading of the spec. Spec: client-server-api, throughout.
"""
from __future__ import annotations

import asyncio
import functools
import io
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from mautrix.api import Method, Path
from mautrix.client import Client, InternalEventType
from mautrix.client.state_store import MemoryStateStore, MemorySyncStore
from mautrix.errors import MBadState, MForbidden, MNotFound, MatrixRequestError
from mautrix.types import (CrossSigningKeys, CrossSigningUsage, DeviceKeys, EncryptionKeyAlgorithm, EventFilter, EventType, Filter, LoginType, Membership, MessageEvent, PaginationDirection, PresenceState,
                           RoomCreatePreset, RoomDirectoryVisibility, RoomEventFilter, RoomFilter,
                           RoomTagInfo, StateEvent, TextMessageEventContent, MessageType, UserID,
                           ReactionEventContent, RelatesTo, RelationType)
from PIL import Image

from pocketserver.rooms.hashing import encode_unpadded_base64
from pocketserver.rooms.signing import SigningKey, sign_json

Login = Callable[[str], Awaitable[Client]]


class Problems(logging.Handler):
    """Collects what mautrix logs at WARNING and above: a response it could not read shows up here."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def problems() -> AsyncIterator[Problems]:
    handler = Problems()
    logger = logging.getLogger("mau")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    assert not handler.records, [f"{r.name}: {r.getMessage()} {r.exc_info[1] if r.exc_info else ''}"
                                 for r in handler.records]


@pytest.fixture
async def login(homeserver, http: aiohttp.ClientSession, problems: Problems) -> AsyncIterator[Login]:
    """Register through the shared secret, then log in with mautrix's own password login."""
    clients: list[Client] = []

    async def make(name: str) -> Client:
        body = await homeserver.register_shared_secret(http, name, f"pw-{name}")
        client = Client(mxid=UserID(body["user_id"]), base_url=homeserver.base_url,
                        state_store=MemoryStateStore(), sync_store=MemorySyncStore())
        clients.append(client)
        await client.login(password=f"pw-{name}", device_name=f"{name}'s bot")
        return client

    yield make
    for client in clients:
        syncing = client.syncing_task
        client.stop()
        if syncing is not None:
            await asyncio.wait([syncing])   # its handlers are cancelled with it
        await client.api.session.close()


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a sync loop to have seen something."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "teal").save(buf, format="PNG")
    return buf.getvalue()


async def test_login_whoami_devices_and_logout(login: Login) -> None:
    bot = await login("mxlogin")
    versions = await bot.versions()
    assert versions.supports("v1.1") and versions.supports("v1.11")
    flows = await bot.get_login_flows()
    assert flows.supports_type(LoginType.PASSWORD)
    who = await bot.whoami()
    assert (who.user_id, who.device_id) == (bot.mxid, bot.device_id)
    token = bot.api.token
    await bot.logout()
    bot.api.token = token       # mautrix forgets the token as it logs out; the server must too
    with pytest.raises(MatrixRequestError) as refused:
        await bot.whoami()
    assert (refused.value.http_status, refused.value.errcode) == (401, "M_UNKNOWN_TOKEN")


async def test_rooms_membership_state_and_history(login: Login) -> None:
    alice, bob = await login("mxalice"), await login("mxbob")
    room = await alice.create_room(alias_localpart="mx-family", name="Family", topic="Dinner",
                                   preset=RoomCreatePreset.PRIVATE, invitees=[bob.mxid])
    assert await bob.resolve_room_alias(f"#mx-family:{alice.domain}") is not None
    assert (await bob.join_room(f"#mx-family:{alice.domain}")) == room
    assert room in await bob.get_joined_rooms()
    assert set(await alice.get_joined_members(room)) == {alice.mxid, bob.mxid}
    members = await alice.get_members(room)
    assert {m.state_key for m in members if m.content.membership == Membership.JOIN} == {alice.mxid, bob.mxid}

    sent = [await bob.send_text(room, f"hello {i}") for i in range(5)]
    await alice.send_state_event(room, EventType.ROOM_TOPIC, {"topic": "Lunch"})
    topic = await bob.get_state_event(room, EventType.ROOM_TOPIC)
    assert topic.topic == "Lunch"
    state = await bob.get_state(room)
    assert {e.type for e in state} >= {EventType.ROOM_CREATE, EventType.ROOM_NAME, EventType.ROOM_MEMBER}

    event = await alice.get_event(room, sent[2])
    assert isinstance(event, MessageEvent) and event.content.body == "hello 2"
    context = await alice.get_event_context(room, sent[2], limit=2)
    assert context.event.event_id == sent[2]
    assert [e.event_id for e in context.events_before] == [sent[1]]
    assert [e.event_id for e in context.events_after] == [sent[3]]
    assert any(e.type == EventType.ROOM_TOPIC for e in context.state)

    await alice.redact(room, sent[0], reason="typo")
    redacted = await bob.get_event(room, sent[0])
    assert redacted.event_id == sent[0] and not redacted.content.serialize().get("body")

    # Page backwards to the start of the room, two at a time.
    bodies, token = [], None
    while True:
        page = await bob.get_messages(room, PaginationDirection.BACKWARD, from_token=token, limit=2)
        bodies += [e.content.body for e in page.events if isinstance(e, MessageEvent) and e.content.body]
        if not page.events or not page.end:
            break
        token = page.end
    assert bodies == [f"hello {i}" for i in (4, 3, 2, 1)]

    # Membership changes, each read back through the room's state.
    carol = await login("mxcarol")
    await alice.send_state_event(room, EventType.ROOM_JOIN_RULES, {"join_rule": "public"})
    await carol.join_room_by_id(room)
    await alice.kick_user(room, carol.mxid, reason="too loud")
    assert (await alice.get_state_event(room, EventType.ROOM_MEMBER, carol.mxid)).membership == Membership.LEAVE
    await alice.ban_user(room, carol.mxid, reason="again")
    with pytest.raises(MBadState):
        await carol.join_room_by_id(room)
    await alice.unban_user(room, carol.mxid)
    await carol.join_room_by_id(room)
    await carol.leave_room(room)
    page = await carol.get_messages(room, PaginationDirection.BACKWARD, limit=3)   # what she saw, up to leaving
    assert page.events and page.events[0].type == EventType.ROOM_MEMBER
    await carol.forget_room(room)
    assert room not in await carol.get_joined_rooms()
    with pytest.raises(MForbidden):
        await carol.send_text(room, "still here?")
    # Spec, forget: "a user will no longer be able to retrieve history for this room".
    with pytest.raises(MForbidden):
        await carol.get_messages(room, PaginationDirection.BACKWARD, limit=3)
    with pytest.raises(MForbidden):
        await carol.get_state(room)


async def test_directory_and_user_search(login: Login) -> None:
    alice, bob = await login("mxdiralice"), await login("mxdirbob")
    room = await alice.create_room(name="Book club", preset=RoomCreatePreset.PUBLIC,
                                   visibility=RoomDirectoryVisibility.PUBLIC)
    assert await alice.get_room_directory_visibility(room) == RoomDirectoryVisibility.PUBLIC
    listing = await bob.get_room_directory(limit=50)
    entry = next(r for r in listing.chunk if r.room_id == room)
    assert (entry.name, entry.num_joined_members, entry.world_readable) == ("Book club", 1, False)
    await alice.set_room_directory_visibility(room, RoomDirectoryVisibility.PRIVATE)
    assert room not in {r.room_id for r in (await bob.get_room_directory(limit=50)).chunk}

    await alice.add_room_alias(room, "mx-books")
    assert (await bob.resolve_room_alias(f"#mx-books:{alice.domain}")).room_id == room
    await alice.remove_room_alias("mx-books")
    with pytest.raises(MNotFound):
        await bob.resolve_room_alias(f"#mx-books:{alice.domain}")

    await bob.join_room_by_id(room)
    await alice.set_displayname("Alice Liddell")
    found = await bob.search_users("liddell")     # (mautrix reads `displayname`; the spec says `display_name`)
    assert [u.user_id for u in found.results] == [alice.mxid]


async def test_profile_and_media(login: Login) -> None:
    bot = await login("mxmedia")
    limits = await bot.get_media_repo_config()
    assert limits.upload_size and limits.upload_size > 1024 * 1024

    picture = png((64, 48))
    mxc = await bot.upload_media(picture, mime_type="image/png", filename="avatar.png")
    assert mxc.startswith(f"mxc://{bot.domain}/")
    assert await bot.download_media(mxc) == picture
    thumbnail = Image.open(io.BytesIO(await bot.download_thumbnail(mxc, width=32, height=32)))
    assert thumbnail.size[0] <= 64 and thumbnail.size[1] <= 48

    # Asynchronous upload (spec v1.7): mautrix creates the ID, returns it, and uploads in the
    # background; a download waits for the bytes.
    later = await bot.upload_media(b"later bytes", mime_type="text/plain", async_upload=True)
    assert await bot.download_media(later, timeout_ms=10000) == b"later bytes"

    await bot.set_displayname("Media Bot")
    await bot.set_avatar_url(mxc)
    assert await bot.get_displayname(bot.mxid) == "Media Bot"
    assert await bot.get_avatar_url(bot.mxid) == mxc
    profile = await bot.get_profile(bot.mxid)
    assert (profile.displayname, profile.avatar_url) == ("Media Bot", mxc)


async def test_account_data_tags_push_rules_and_filters(login: Login) -> None:
    bot = await login("mxdata")
    room = await bot.create_room(name="Notes")
    await bot.set_account_data("org.example.settings", {"theme": "dark"})
    assert await bot.get_account_data("org.example.settings") == {"theme": "dark"}
    await bot.set_account_data("org.example.room", {"pinned": True}, room_id=room)
    assert await bot.get_account_data("org.example.room", room_id=room) == {"pinned": True}
    with pytest.raises(MNotFound):
        await bot.get_account_data("org.example.never")

    await bot.set_room_tag(room, "m.favourite", RoomTagInfo(order=0.25))
    await bot.set_room_tag(room, "u.work")
    tags = await bot.get_room_tags(room)
    assert tags.tags["m.favourite"].order == 0.25 and "u.work" in tags.tags
    await bot.remove_room_tag(room, "u.work")
    assert set((await bot.get_room_tags(room)).tags) == {"m.favourite"}

    rule = await bot.get_push_rule("global", "override", ".m.rule.master")
    assert rule.enabled is False and rule.default is True
    await bot.set_push_rule("global", "room", room, actions=[])
    assert (await bot.get_push_rule("global", "room", room)).rule_id == room
    await bot.remove_push_rule("global", "room", room)
    with pytest.raises(MNotFound):
        await bot.get_push_rule("global", "room", room)

    wanted = Filter(room=RoomFilter(timeline=RoomEventFilter(limit=5, types=[EventType.ROOM_MESSAGE])))
    filter_id = await bot.create_filter(wanted)
    stored = await bot.get_filter(filter_id)
    assert stored.room.timeline.limit == 5 and stored.room.timeline.types == [EventType.ROOM_MESSAGE]


async def test_presence_typing_receipts(login: Login) -> None:
    alice, bob = await login("mxephalice"), await login("mxephbob")
    room = await alice.create_room(preset=RoomCreatePreset.TRUSTED_PRIVATE, invitees=[bob.mxid])
    await bob.join_room_by_id(room)
    await alice.set_presence(PresenceState.ONLINE, status="baking")
    seen = await bob.get_presence(alice.mxid)
    assert (seen.presence, seen.status_msg) == (PresenceState.ONLINE, "baking")
    event_id = await bob.send_text(room, "cake?")
    await alice.set_typing(room, timeout=5000)
    await alice.send_receipt(room, event_id)
    await alice.set_fully_read_marker(room, event_id, event_id)
    marker = await alice.get_account_data("m.fully_read", room_id=room)
    assert marker["event_id"] == event_id


async def test_a_bot_syncs_answers_and_follows_its_rooms(login: Login) -> None:
    """The shape of every mautrix bot: a sync loop with handlers, invites accepted as they come."""
    bot, human = await login("mxsyncbot"), await login("mxsynchuman")
    messages: list[MessageEvent] = []
    ephemeral: list[Any] = []
    to_device: list[Any] = []
    sync_errors: list[Exception] = []

    async def on_invite(evt: StateEvent) -> None:
        if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
            await bot.join_room_by_id(evt.room_id)

    async def on_message(evt: MessageEvent) -> None:
        messages.append(evt)
        if evt.sender != bot.mxid and evt.content.body == "!ping":
            await bot.send_message(evt.room_id, TextMessageEventContent(msgtype=MessageType.NOTICE, body="pong"))

    async def on_sync_error(details: dict[str, Any]) -> None:
        sync_errors.append(details["error"])

    bot.add_event_handler(EventType.ROOM_MEMBER, on_invite)
    bot.add_event_handler(EventType.ROOM_MESSAGE, on_message)
    async def keep(seen: list[Any], evt: Any) -> None:
        seen.append(evt)

    bot.add_event_handler(EventType.TYPING, functools.partial(keep, ephemeral))
    bot.add_event_handler(EventType.RECEIPT, functools.partial(keep, ephemeral))
    ping = EventType.find("org.example.ping", EventType.Class.TO_DEVICE)
    bot.add_event_handler(ping, functools.partial(keep, to_device))
    bot.add_event_handler(InternalEventType.SYNC_ERRORED, on_sync_error)
    synced: list[Any] = []
    bot.add_event_handler(InternalEventType.SYNC_SUCCESSFUL, lambda details: keep(synced, details["data"]))
    await bot.create_room(name="Before the loop")      # the initial sync has something to skip
    bot.ignore_initial_sync = True                      # as maubot's bots run
    bot.start(Filter(room=RoomFilter(timeline=RoomEventFilter(limit=20)), presence=EventFilter(not_types=["*"])))
    await eventually(lambda: bool(synced))                 # the initial sync, skipped
    assert len(synced[0]["rooms"]["join"]) == 1

    room = await human.create_room(name="Help desk", invitees=[bot.mxid])
    # mautrix records the bot's own join from the join response; the room's other
    # members arrive with the sync that carries the join, which may come later.
    await eventually(lambda: bot.state_store.members.get(room, {}).get(bot.mxid) is not None
                     and bot.state_store.members[room][bot.mxid].membership == Membership.JOIN
                     and human.mxid in bot.state_store.members[room])
    assert (await bot.state_store.get_member(room, human.mxid)).membership == Membership.JOIN

    asked = await human.send_text(room, "!ping")
    await eventually(lambda: any(m.sender == bot.mxid and m.content.body == "pong" for m in messages))
    reply = next(m for m in messages if m.sender == bot.mxid)
    page = await human.get_messages(room, PaginationDirection.BACKWARD, limit=5)
    assert reply.event_id in {e.event_id for e in page.events}, [(e.type, e.event_id, e.sender) for e in page.events]

    await human.set_typing(room, timeout=10000)
    await human.send_receipt(room, asked)
    await eventually(lambda: any(e.type == EventType.TYPING and human.mxid in e.content.user_ids for e in ephemeral))
    await eventually(lambda: any(e.type == EventType.RECEIPT and asked in e.content for e in ephemeral))

    await human.send_to_device(ping, {bot.mxid: {bot.device_id: {"n": 1}}})
    await eventually(lambda: any(e.sender == human.mxid and e.content["n"] == 1 for e in to_device))

    # The state store follows changes made while the loop runs.
    await human.send_state_event(room, EventType.ROOM_NAME, {"name": "Front desk"})
    await human.kick_user(room, bot.mxid)
    await eventually(lambda: bot.state_store.members[room][bot.mxid].membership == Membership.LEAVE)
    assert sync_errors == []
    assert {m.content.body for m in messages} == {"!ping", "pong"}


def ed25519(seed: int, key_id: str | None = None) -> SigningKey:
    """An ed25519 key from a seed; a cross-signing key's ID is its public key."""
    key = SigningKey.from_seed(bytes([seed]) * 32, key_id or "")
    return SigningKey.from_seed(bytes([seed]) * 32, key_id or key.verify_key_base64)


async def test_e2ee_key_endpoints_as_a_bridge_uses_them(login: Login) -> None:
    """Device keys, one-time keys, cross-signing and signatures, read back through mautrix's types."""
    alice, bob = await login("mxkeysalice"), await login("mxkeysbob")
    room = await alice.create_room(invitees=[bob.mxid])
    await bob.join_room_by_id(room)

    device_key = ed25519(1, alice.device_id)
    device_keys = sign_json({"user_id": alice.mxid, "device_id": alice.device_id,
                             "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                             "keys": {f"ed25519:{alice.device_id}": device_key.verify_key_base64,
                                      f"curve25519:{alice.device_id}": encode_unpadded_base64(bytes(32))}},
                            alice.mxid, device_key)
    one_time = {f"signed_curve25519:K{i}": sign_json({"key": f"otk{i}"}, alice.mxid, device_key) for i in range(3)}
    counts = await alice.upload_keys(one_time_keys=one_time, device_keys=device_keys)
    assert counts == {EncryptionKeyAlgorithm.SIGNED_CURVE25519: 3}

    found = await bob.query_keys([alice.mxid])
    theirs = found.device_keys[alice.mxid][alice.device_id]
    assert isinstance(theirs, DeviceKeys) and theirs.ed25519 == device_key.verify_key_base64
    assert theirs.unsigned.device_display_name == "mxkeysalice's bot"
    assert found.failures == {}

    # Cross-signing: master, then self- and user-signing keys signed by it (no UIA the first time).
    master, self_signing, user_signing = ed25519(10), ed25519(11), ed25519(12)

    def cross(key: SigningKey, usage: str, signer: SigningKey | None) -> CrossSigningKeys:
        body = {"user_id": alice.mxid, "usage": [usage], "keys": {f"ed25519:{key.verify_key_base64}": key.verify_key_base64}}
        return CrossSigningKeys.deserialize(sign_json(body, alice.mxid, signer) if signer else body)

    await alice.upload_cross_signing_keys({CrossSigningUsage.MASTER: cross(master, "master", None),
                                           CrossSigningUsage.SELF: cross(self_signing, "self_signing", master),
                                           CrossSigningUsage.USER: cross(user_signing, "user_signing", master)})
    signed_device = DeviceKeys.deserialize(sign_json(device_keys, alice.mxid, self_signing))
    await alice.upload_one_signature(alice.mxid, alice.device_id, signed_device)

    found = await bob.query_keys([alice.mxid])
    assert found.master_keys[alice.mxid].first_ed25519_key == master.verify_key_base64
    assert found.self_signing_keys[alice.mxid].first_ed25519_key == self_signing.verify_key_base64
    assert alice.mxid not in found.user_signing_keys        # only its owner sees a user-signing key
    signatures = found.device_keys[alice.mxid][alice.device_id].signatures[alice.mxid]
    assert f"ed25519:{self_signing.verify_key_base64}" in {str(key_id) for key_id in signatures}
    own = await alice.query_keys([alice.mxid])
    assert own.user_signing_keys[alice.mxid].first_ed25519_key == user_signing.verify_key_base64

    claimed = await bob.claim_keys({alice.mxid: {alice.device_id: EncryptionKeyAlgorithm.SIGNED_CURVE25519}})
    [(key_id, key)] = claimed.one_time_keys[alice.mxid][alice.device_id].items()
    assert str(key_id).startswith("signed_curve25519:K") and key["key"].startswith("otk")
    assert claimed.failures == {}


async def test_replies_edits_reactions_and_threads(login: Login) -> None:
    """What bots send most after text, built with mautrix's own helpers and read back through its types."""
    bot, human = await login("mxrelbot"), await login("mxrelhuman")
    room = await human.create_room(preset=RoomCreatePreset.PUBLIC)
    await bot.join_room_by_id(room)
    question = await human.send_text(room, "what's for dinner?")

    answer = TextMessageEventContent(msgtype=MessageType.TEXT, body="pasta")
    answer.set_reply(question)
    reply_id = await bot.send_message(room, answer)
    fixed = TextMessageEventContent(msgtype=MessageType.TEXT, body="pizza")
    fixed.set_edit(reply_id)           # mautrix sends "* pizza" with m.new_content {"body": "pizza"}
    edit_id = await bot.send_message(room, fixed)
    reaction = ReactionEventContent(relates_to=RelatesTo(rel_type=RelationType.ANNOTATION, event_id=question, key="🍕"))
    reaction_id = await bot.send_message_event(room, EventType.REACTION, reaction)
    in_thread = TextMessageEventContent(msgtype=MessageType.TEXT, body="with olives")
    in_thread.set_thread_parent(question)
    thread_id = await human.send_message(room, in_thread)

    reply = await human.get_event(room, reply_id)
    assert reply.content.get_reply_to() == question
    edit = await human.get_event(room, edit_id)
    assert edit.content.get_edit() == reply_id and edit.content.body == "pizza"    # mautrix reads m.new_content
    raw_edit = await human.api.request(Method.GET, Path.v3.rooms[room].event[edit_id])
    assert (raw_edit["content"]["body"], raw_edit["content"]["m.new_content"]["body"]) == ("* pizza", "pizza")
    # The original as read now carries the edit (spec: "Event replacements", server-side aggregation).
    original = await human.api.request(Method.GET, Path.v3.rooms[room].event[reply_id])
    assert original["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit_id
    got = await human.get_event(room, reaction_id)
    assert (got.content.relates_to.rel_type, got.content.relates_to.event_id, got.content.relates_to.key) == (
        RelationType.ANNOTATION, question, "🍕")
    threaded = await bot.get_event(room, thread_id)
    assert threaded.content.get_thread_parent() == question
    # The relations as the server indexed them (spec: GET /rooms/{roomId}/relations/{eventId}).
    related = await human.api.request(Method.GET, Path.v1.rooms[room].relations[question])
    assert {e["event_id"] for e in related["chunk"]} == {reaction_id, thread_id}
