"""The roomserver: the only way an event enters a room.

build -> select auth events -> check the auth rules -> sign -> persist through the writer -> notify.
Spec: server-server-api, "Authorization rules" and "Adding hashes and signatures to outgoing events".
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pocketserver.config import Config
from pocketserver.e2ee.device_lists import record_membership_change
from pocketserver.errors import Forbidden, MatrixError, NotFound, TooLarge
from pocketserver.rooms.auth_rules import (AuthRuleViolation, auth_state_for, check_auth_rules,
                                           check_redaction_applies, select_auth_events)
from pocketserver.rooms.canonical import encode_canonical_json
from pocketserver.rooms.events import (MAX_EVENT_BYTES, EventFormatError, EventTooLarge, Pdu, StateKey, build_event,
                                       get_redacts)
from pocketserver.rooms.signing import SigningKey
from pocketserver.rooms.redaction import redact
from pocketserver.roomserver.limits import RoomLimits
from pocketserver.roomserver.room_state import RoomState, load_room_state, pdu_from_stored
from pocketserver.roomserver.visibility import StateCache
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage import state as state_store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

log = logging.getLogger(__name__)
MAX_CACHED_ROOMS = 256


class EventSpec(NamedTuple):
    """What a local event should say; the roomserver fills in the rest."""

    type: str
    content: Mapping[str, Any]
    state_key: str | None = None
    redacts: str | None = None


class Persisted(NamedTuple):
    event_id: str
    stream_ordering: int


def now_ms() -> int:
    return int(time.time() * 1000)


class RoomServer:
    """Builds, authorises, signs and persists local events, one room at a time."""

    def __init__(self, config: Config, db: Database, signing_key: SigningKey) -> None:
        self.config = config
        self.db = db
        self.signing_key = signing_key
        self.server_name = config.server_name
        self._locks: dict[str, asyncio.Lock] = {}
        self._rooms: OrderedDict[str, RoomState] = OrderedDict()
        self.state_cache = StateCache(db)
        self._pending_txns: dict[tuple[str, ...], asyncio.Future[list[Persisted]]] = {}
        self._inflight: dict[str, int] = {}     # room_id -> queued jobs not yet committed
        self._latest_job: dict[str, asyncio.Future[Any]] = {}   # room_id -> its last queued job, while any is
        self.limits = RoomLimits(config)

    def lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def get_room_state(self, room_id: str) -> RoomState | None:
        """The cached view of a room (loaded on first use), or None if the room is unknown."""
        room = self._rooms.get(room_id)
        if room is None:
            room = await load_room_state(self.db, room_id)
            if room is None:
                return None
            self.remember(room)
        else:
            self._rooms.move_to_end(room_id)
        return room

    def cached_room_state(self, room_id: str) -> RoomState | None:
        """The room's view if it is in memory; never loads it (for reads that can do without)."""
        return self._rooms.get(room_id)

    def remember(self, room: RoomState) -> None:
        """Keep `room` as the room's view; evict the least recently used idle rooms beyond the bound."""
        self._rooms[room.room_id] = room
        self._rooms.move_to_end(room.room_id)
        if len(self._rooms) > MAX_CACHED_ROOMS:
            # A room with queued jobs must keep its view: a reload would miss the queued events.
            for room_id in [r for r in self._rooms if not self._inflight.get(r)]:
                if len(self._rooms) <= MAX_CACHED_ROOMS:
                    break
                del self._rooms[room_id]

    async def require_room(self, room_id: str, user_id: str | None = None) -> RoomState:
        """The room's state; an unknown room is 404, or for `user_id` 403 "not in room", as Synapse
        answers a room's reads and sends (it does not tell a stranger whether a room exists)."""
        room = await self.get_room_state(room_id)
        if room is None:
            if user_id is not None:
                raise Forbidden(f"User {user_id} not in room {room_id}")
            raise NotFound("Unknown room")
        return room

    def build(self, room: RoomState, sender: str, spec: EventSpec, *, ts: int | None = None) -> Pdu:
        """Build, sign and authorise one event against `room` (which the caller then advances).

        Spec: server-server-api, "Auth events selection"; rooms/vN, "Authorisation rules".
        """
        try:
            if len(encode_canonical_json(dict(spec.content))) > MAX_EVENT_BYTES:
                raise TooLarge("Event is larger than 65536 bytes")
        except (TypeError, ValueError):
            raise _BadEvent("Event content is not valid canonical JSON") from None
        auth_events = select_auth_events(spec.type, sender, spec.state_key, spec.content, room.state, room.version)
        try:
            pdu = build_event(version=room.version, room_id=room.room_id, sender=sender, type=spec.type,
                              content=dict(spec.content), prev_events=room.extremities[-20:],
                              auth_events=auth_events, origin_server_ts=ts or now_ms(),
                              server_name=self.server_name, signing_key=self.signing_key,
                              state_key=spec.state_key, redacts=spec.redacts)
        except EventTooLarge:
            raise TooLarge("Event is larger than 65536 bytes") from None
        except (EventFormatError, ValueError) as exc:
            raise _BadEvent(str(exc)) from None
        auth_map = {(e.type, e.state_key or ""): e for e in auth_events}
        try:
            check_auth_rules(pdu, auth_map, room.version, create=room.create)
        except AuthRuleViolation as violation:
            if violation.malformed:
                raise _BadEvent(violation.message) from None
            raise Forbidden(violation.message) from None
        return pdu

    @staticmethod
    def advance(room: RoomState, pdu: Pdu) -> None:
        """Move `room` past `pdu`: it becomes the only extremity and, if state, current state."""
        room.extremities = [pdu]
        if pdu.state_key is not None:
            room.state[(pdu.type, pdu.state_key)] = pdu

    async def send(self, room_id: str, sender: str, specs: Sequence[EventSpec], *,
                   txn: tuple[str, str, str] | None = None,
                   check: Any = None) -> list[Persisted]:
        """Create `specs` in order in one room and persist them in one write job.

        `txn` is (user_id, device_id, txn_id) for idempotent sends; `check(room)` may refuse
        before anything is built. Raises Forbidden when an auth rule refuses an event. The room
        lock is held only while building and queueing, so the next event of the room can be
        built while this one waits for its commit (they may share it).
        """
        async with self.lock(room_id):
            room = await self.require_room(room_id)
            if check is not None:
                await check(room)
            working = room.copy()
            built = []
            for spec in specs:
                pdu = self.build(working, sender, spec)
                built.append(pdu)
                self.advance(working, pdu)
            future, _ = self.enqueue(room, built, txn=txn)
        return await future

    async def persist(self, room: RoomState, pdus: Sequence[Pdu], *, txn: tuple[str, str, str] | None = None,
                      new_room: tuple[str, bool] | None = None,
                      extra: Any = None) -> tuple[list[Persisted], RoomState]:
        """Queue already-authorised events of one room and wait for their commit.

        Returns them and the room view that includes them.
        """
        future, head = self.enqueue(room, pdus, txn=txn, new_room=new_room, extra=extra)
        return await future, head

    async def settled(self, room_id: str) -> None:
        """Wait until every event queued for the room so far is committed (or failed): a check that
        reads the database then sees them. Jobs commit in order, so the last one is enough."""
        latest = self._latest_job.get(room_id)
        if latest is not None and not latest.done():
            await asyncio.wait([latest])

    def pending_txn(self, txn: tuple[str, ...]) -> "asyncio.Future[list[Persisted]] | None":
        """The queued, not yet committed send with this (user, device, txn_id), if any."""
        return self._pending_txns.get(txn)

    def enqueue(self, room: RoomState, pdus: Sequence[Pdu], *, txn: tuple[str, ...] | None = None,
                new_room: tuple[str, bool] | None = None,
                extra: Any = None) -> tuple["asyncio.Future[list[Persisted]]", RoomState]:
        """Queue the write job for `pdus` (built on `room`) and make them the room's head at once.

        Call with the room lock held. Jobs run in queue order; if one fails, later jobs built on
        it fail too (their prev_events are missing) and the room view is reloaded from the database.
        """
        version, room_id, cursor = room.version, room.room_id, room.cursor
        assert cursor is not None
        snapshot = room.copy()
        head = room.copy()
        for pdu in pdus:
            self.advance(head, pdu)
        self.remember(head)

        async def job(tx: Transaction) -> list[Persisted]:
            working = snapshot
            group, chain = cursor.state_group, cursor.chain_length
            out = []
            if new_room is not None:
                await room_store.insert_room(tx, room_id, version.identifier, new_room[0], new_room[1], now_ms())
            await _check_prev_events_stored(tx, pdus[0])
            for pdu in pdus:
                position = await tx.next_stream_position(event_store.STREAM)
                before_group = group
                replaces = None
                if pdu.state_key is not None:
                    key: StateKey = (pdu.type, pdu.state_key)
                    previous = working.state.get(key)
                    replaces = previous.event_id if previous else None
                    working.state[key] = pdu
                    group, chain = await state_store.insert_state_group(
                        tx, room_id, group if group >= 0 else None, chain, {key: pdu.event_id}, working.state_ids())
                    membership = pdu.content.get("membership") if pdu.type == "m.room.member" else None
                    await room_store.update_current_state(
                        tx, room_id, [(key, pdu.event_id, membership if isinstance(membership, str) else None)])
                    if pdu.type == "m.room.member" and pdu.state_key.endswith(":" + self.server_name):
                        await record_membership_change(tx, room_id, pdu.state_key, str(membership))
                        await room_store.set_local_membership(tx, pdu.state_key, room_id, str(membership),
                                                              pdu.event_id, position)
                        predecessor = working.create.content.get("predecessor")
                        if membership == "join" and isinstance(predecessor, Mapping) and (
                                previous is None or previous.content.get("membership") != "join") \
                                and isinstance(predecessor.get("room_id"), str):
                            await self.on_joined_successor(tx, pdu.state_key, predecessor["room_id"], room_id,
                                                           working.create.sender)
                    if pdu.type == "m.room.member":
                        tx.changes.users.add(pdu.state_key)
                relates = pdu.content.get("m.relates_to")
                relates_to = relates.get("event_id") if isinstance(relates, Mapping) else None
                rel_type = relates.get("rel_type") if isinstance(relates, Mapping) else None
                await event_store.insert_event(
                    tx, event_id=pdu.event_id, room_id=room_id, stream_ordering=position, type=pdu.type,
                    state_key=pdu.state_key, sender=pdu.sender, depth=pdu.depth,
                    origin_server_ts=pdu.origin_server_ts, raw=pdu.raw, prev_events=pdu.prev_events,
                    state_before=before_group, state_after=group, replaces_state=replaces,
                    relates_to=relates_to if isinstance(relates_to, str) else None,
                    rel_type=rel_type if isinstance(rel_type, str) else None,
                    txn_id=txn[2] if txn else None, device_id=txn[1] if txn else None)
                await self.on_event_persisted(tx, working, pdu, position)
                if pdu.type == "m.room.redaction":
                    await self._apply_redaction(tx, working, pdu)
                if pdu.type == "m.room.history_visibility":
                    self.state_cache.history_visibility_changed(room_id)
                working.extremities = [pdu]
                out.append(Persisted(pdu.event_id, position))
            if extra is not None:
                await extra(tx)
            if txn is not None:
                # The last element is the dedup key (a scoped txn_id, see sending._send_once).
                await event_store.insert_txn(tx, txn[0], txn[1], txn[-1], out[-1].event_id, now_ms())
            tx.changes.rooms.add(room_id)
            # Only a job that got this far moves the cursor; a failed one leaves it for the reload.
            cursor.state_group, cursor.chain_length = group, chain
            return out

        future = self.db.enqueue(job)
        self._inflight[room_id] = self._inflight.get(room_id, 0) + 1
        self._latest_job[room_id] = future
        if txn is not None:
            self._pending_txns[txn] = future

        changes_visibility = any(p.type == "m.room.history_visibility" for p in pdus)

        def done(f: "asyncio.Future[list[Persisted]]") -> None:
            if changes_visibility:   # again after the commit: a read in between may have cached the old answer
                self.state_cache.history_visibility_changed(room_id)
            left = self._inflight.get(room_id, 1) - 1
            if left > 0:
                self._inflight[room_id] = left
            else:
                self._inflight.pop(room_id, None)
                self._latest_job.pop(room_id, None)
            if txn is not None and self._pending_txns.get(txn) is f:
                del self._pending_txns[txn]
            if f.cancelled() or f.exception() is not None:
                self.forget(room_id)

        future.add_done_callback(done)
        return future, head

    def forget(self, room_id: str) -> None:
        """Drop the cached view of a room; the next use reloads it from what is committed."""
        self._rooms.pop(room_id, None)

    async def on_event_persisted(self, tx: Transaction, room: RoomState, pdu: Pdu, stream_ordering: int) -> None:
        """Called in the write job after each event is stored; a no-op until push evaluation replaces it."""

    async def on_event_redacted(self, tx: Transaction, room_id: str, stream_ordering: int) -> None:
        """Called in the write job when a redaction applies to a stored event; push replaces it."""

    async def on_joined_successor(self, tx: Transaction, user_id: str, old_room_id: str, new_room_id: str,
                                  new_room_creator: str) -> None:
        """Called in the write job when a local user joins a room that replaced another (its create
        event names a predecessor); the server replaces it with upgrade.carry_user_settings."""

    async def _apply_redaction(self, tx: Transaction, room: RoomState, redaction: Pdu) -> None:
        """Store the redacted form of the target when this redaction may apply to it.

        Spec: rooms/v3, "Handling redactions"; client-server-api, "Redactions".
        """
        target_id = get_redacts(redaction, room.version)
        if target_id is None:
            return
        target = await event_store.get_event_tx(tx, target_id)
        if target is None or target.room_id != room.room_id or target.redacted_by is not None:
            return
        original = pdu_from_stored(target, room.version)
        if not check_redaction_applies(redaction, original, auth_state_for(room.state, room.create, room.version)):
            return
        redacted = redact(target.json, room.version)
        await event_store.set_redacted(tx, target_id, redacted, redaction.event_id)
        await self.on_event_redacted(tx, room.room_id, target.stream_ordering)
        self.state_cache.forget_content(target_id)
        if target.state_key is not None:
            key = (target.type, target.state_key)
            redacted_pdu = pdu_from_stored(target._replace(json=redacted), room.version)
            # Current state now holds the redacted form; later auth checks must use it.
            for view in (room, self._rooms.get(room.room_id)):
                current = view.state.get(key) if view is not None else None
                if current is not None and current.event_id == target_id:
                    view.state[key] = redacted_pdu


async def _check_prev_events_stored(tx: Transaction, first: Pdu) -> None:
    """Refuse a job whose first event builds on an event that never got committed."""
    prevs = list(dict.fromkeys(first.prev_events))
    if not prevs:
        return
    marks = ",".join("?" * len(prevs))
    row = await tx.fetchone(f"SELECT COUNT(*) FROM events WHERE event_id IN ({marks})", prevs)
    if row is None or row[0] != len(prevs):
        raise _PrevEventLost("An earlier event of this room failed to be stored; please retry")


_STRING_FIELDS = {"m.room.name": "name", "m.room.topic": "topic"}


def check_client_content(event_type: str, content: Mapping[str, Any]) -> None:
    """Refuse content a client sends that clients reading it could not display: a room name or
    topic that is not a string (null and absent still mean "none"), 400 as from Synapse.

    Spec: client-server-api, "m.room.name", "m.room.topic".
    """
    field = _STRING_FIELDS.get(event_type)
    if field is not None and content.get(field) is not None and not isinstance(content[field], str):
        raise _BadEvent(f"'{field}' must be a string")


class _PrevEventLost(MatrixError):
    errcode, status = "M_UNKNOWN", 503


class _BadEvent(MatrixError):
    errcode, status = "M_BAD_JSON", 400
