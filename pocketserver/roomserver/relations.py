"""Relations between events for clients: child events, thread lists, bundled aggregations and
jumping to a point in time, all through history visibility.

Spec: client-server-api, "Forming relationships between events", "Aggregations of child events",
"Relationships API", "Threading", "Event replacements", "Reference relations".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from pocketserver.errors import NotFound
from pocketserver.rooms.redaction import redact
from pocketserver.storage import events as event_store
from pocketserver.storage import relations as relation_store
from pocketserver.storage.events import StoredEvent
from pocketserver.storage.relations import Child
from pocketserver.sync.tokens import StreamToken

if TYPE_CHECKING:  # reads.py calls bundle_relations, so RoomReader is only a type here
    from pocketserver.roomserver.reads import RoomReader

# "Homeservers SHOULD traverse at least 3 levels of relationships" (relations.yaml, `recurse`).
RECURSION_DEPTH = 3
# Events that may not be the parent of any aggregation (Synapse: edits and reactions).
NO_CHILDREN = ("m.replace", "m.annotation")
# How many events timestamp_to_event checks for visibility before giving up.
TIMESTAMP_BATCH = 50
TIMESTAMP_MAX_BATCHES = 20


class RelationsPage(NamedTuple):
    """One page of child events with the tokens around it."""

    chunk: list[StoredEvent]
    next_batch: StreamToken | None
    prev_batch: StreamToken | None
    recursion_depth: int | None


def relation_of(event: StoredEvent) -> tuple[str, str] | None:
    """(rel_type, parent event ID) from the event's cleartext content, if it has a well-formed relation."""
    content = event.json.get("content")
    relates = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


async def _ceiling(reader: "RoomReader", read_limit: int | None) -> int:
    newest = await event_store.max_stream_ordering(reader.db)
    return newest if read_limit is None else min(newest, read_limit)


async def get_relating_events(reader: "RoomReader", user_id: str, room_id: str, event_id: str, *,
                              rel_type: str | None, event_type: str | None, from_token: str | None,
                              to_token: str | None, direction: str, limit: int,
                              recurse: bool | None) -> RelationsPage:
    """Child events of one event the user may see, a page at a time (`recurse` None: not asked).

    Tokens are the /messages ones, so a `start` from /messages or a /sync `next_batch` works as `from`.
    Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}".
    """
    start = StreamToken.parse(from_token) if from_token else None
    stop = StreamToken.parse(to_token) if to_token else None
    await reader.get_event(user_id, room_id, event_id)             # 403 outside the room, 404 unseen parent
    ceiling = await _ceiling(reader, await reader.require_reader(user_id, room_id))
    backwards = direction == "b"
    if backwards:
        after, upto = (stop.events if stop else 0), min(start.events if start else ceiling, ceiling)
    else:
        after, upto = (start.events if start else 0), min(stop.events if stop else ceiling, ceiling)
    rows = await relation_store.get_relations(
        reader.db, room_id, event_id, rel_type=rel_type, event_type=event_type, after=after, upto=upto,
        limit=limit + 1, backwards=backwards, max_depth=RECURSION_DEPTH if recurse else 1)
    page = rows[:limit]
    next_batch = None
    if len(rows) > limit and page:
        last = page[-1].stream_ordering
        next_batch = (start or StreamToken()).with_events(last - 1 if backwards else last)
    depth = None if recurse is None else (RECURSION_DEPTH if recurse else 1)
    return RelationsPage(await reader.visible(user_id, page), next_batch, start, depth)


async def get_thread_roots(reader: "RoomReader", user_id: str, room_id: str, *, include: str,
                           from_token: str | None, limit: int) -> tuple[list[StoredEvent], StreamToken | None]:
    """Thread roots the user may see, most recent thread activity first, and the next page's token.

    Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/threads".
    """
    start = StreamToken.parse(from_token) if from_token else None
    ceiling = await _ceiling(reader, await reader.require_reader(user_id, room_id))
    upto = min(start.events, ceiling) if start else ceiling
    rows = await relation_store.get_thread_roots(reader.db, room_id, upto=upto, ceiling=ceiling, limit=limit + 1,
                                                 participant=user_id if include == "participated" else None)
    page = rows[:limit]
    roots = await event_store.get_events(reader.db, [root for root, _ in page])
    ordered = [roots[root] for root, _ in page if root in roots]
    next_batch = (start or StreamToken()).with_events(page[-1][1] - 1) if len(rows) > limit and page else None
    visible = await reader.visible(user_id, ordered, keep_ignored=True)
    ignored = await reader.ignored.of(user_id) if visible else frozenset()
    if any(e.sender in ignored for e in visible):
        # "If the thread root event was sent by an ignored user, the event is returned redacted."
        version = (await reader.rs.require_room(room_id)).version
        visible = [e._replace(json=redact(e.json, version)) if e.sender in ignored else e for e in visible]
    return visible, next_batch


async def get_event_by_timestamp(reader: "RoomReader", user_id: str, room_id: str, origin_server_ts: int,
                                 direction: str) -> StoredEvent:
    """The visible event nearest `origin_server_ts` in the direction `f` (at or after) or `b` (at or before).

    Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event".
    """
    ceiling = await _ceiling(reader, await reader.require_reader(user_id, room_id))
    forwards = direction == "f"
    for batch_number in range(TIMESTAMP_MAX_BATCHES):
        batch = await relation_store.get_events_by_timestamp(
            reader.db, room_id, origin_server_ts, forwards=forwards, upto=ceiling, limit=TIMESTAMP_BATCH,
            offset=batch_number * TIMESTAMP_BATCH)
        visible = await reader.visible(user_id, batch)
        if visible:
            return visible[0]
        if len(batch) < TIMESTAMP_BATCH:
            break
    raise NotFound(f"Unable to find event from {origin_server_ts} in "
                   f"{'forward' if forwards else 'backward'} direction")


def _is_valid_replacement(original: StoredEvent, edit: StoredEvent) -> bool:
    """Spec: client-server-api, "Validity of replacement events" (the same room is checked by the caller)."""
    if edit.sender != original.sender or edit.type != original.type or edit.state_key is not None:
        return False
    if edit.type == "m.room.encrypted":
        return True                     # m.new_content is inside the ciphertext
    content = edit.json.get("content")
    return isinstance(content, Mapping) and isinstance(content.get("m.new_content"), Mapping)


def _more_recent(a: StoredEvent, b: StoredEvent | None) -> bool:
    """Spec: "Server-side aggregation of m.replace relationships" (origin_server_ts, then event_id)."""
    if b is None:
        return True
    return (int(a.json.get("origin_server_ts", 0)), a.event_id) > (int(b.json.get("origin_server_ts", 0)), b.event_id)


@dataclass
class _Aggregation:
    edit: StoredEvent | None = None
    thread: list[StoredEvent] | None = None
    participated: bool = False
    references: list[str] | None = None


def _aggregate(parents: Mapping[str, StoredEvent], children: Sequence[Child], visible: set[str],
               user_id: str | None) -> dict[str, _Aggregation]:
    """Fold the children (oldest first) into one aggregation per parent."""
    found: dict[str, _Aggregation] = {}
    for child in children:
        parent = parents[child.relates_to]
        agg = found.setdefault(parent.event_id, _Aggregation())
        seen = child.event.event_id in visible
        if child.rel_type == "m.replace":
            # "If the original event is redacted, any m.replace relationship should not be bundled."
            if seen and parent.redacted_by is None and _is_valid_replacement(parent, child.event) \
                    and _more_recent(child.event, agg.edit):
                agg.edit = child.event
        elif child.rel_type == "m.thread" and relation_of(parent) is None:
            agg.participated = agg.participated or child.event.sender == user_id or parent.sender == user_id
            if seen:
                agg.thread = (agg.thread or []) + [child.event]
        elif child.rel_type == "m.reference" and seen:
            agg.references = (agg.references or []) + [child.event.event_id]
    return found


async def bundle_relations(reader: "RoomReader", events: Sequence[StoredEvent], out: Sequence[dict[str, Any]],
                           user_id: str | None, device_id: str | None, *, include_room_id: bool = True) -> None:
    """Add `unsigned["m.relations"]` to the serialised `out[i]` of each `events[i]` that has aggregations.

    One query finds the children of every event; only children the user may see and does not ignore
    count. The bundled edit and the thread's latest event are serialised like the events themselves,
    with their own aggregations. That nesting ends after one level: they carry a relation, and an event
    with a relation gets no thread summary.
    Spec: client-server-api, "Aggregations of child events" and the server-side aggregation sections of
    "Event replacements", "Threading" and "Reference relations".
    """
    parents = {e.event_id: e for e in events
               if e.state_key is None and (relation_of(e) or ("", ""))[0] not in NO_CHILDREN}
    if not parents:
        return
    children = [c for c in await relation_store.get_children(reader.db, parents)
                if c.event.room_id == parents[c.relates_to].room_id]
    if not children:
        return
    if user_id is None:
        visible = {c.event.event_id for c in children}
    else:
        visible = {e.event_id for e in await reader.visible(user_id, [c.event for c in children])}
    aggregations = _aggregate(parents, children, visible, user_id)
    nested = [e for agg in aggregations.values() for e in ((agg.edit,) if agg.edit else ())]
    nested += [agg.thread[-1] for agg in aggregations.values() if agg.thread]
    serialised = {e.event_id: s for e, s in zip(nested, await reader.serialize(
        nested, user_id, device_id, include_room_id=include_room_id))} if nested else {}
    for event, client_event in zip(events, out):
        agg = aggregations.get(event.event_id)
        if agg is None:
            continue
        relations: dict[str, Any] = {}
        if agg.edit is not None:
            relations["m.replace"] = serialised[agg.edit.event_id]
        if agg.thread:
            relations["m.thread"] = {"latest_event": serialised[agg.thread[-1].event_id],
                                     "count": len(agg.thread), "current_user_participated": agg.participated}
        if agg.references:
            relations["m.reference"] = {"chunk": [{"event_id": r} for r in agg.references]}
        if relations:
            client_event.setdefault("unsigned", {})["m.relations"] = relations
