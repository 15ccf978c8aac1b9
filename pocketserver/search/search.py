"""POST /search: full-text search of room events the user may see.

Spec: client-server-api, "Server Side Search" and "POST /_matrix/client/v3/search".
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pocketserver.errors import BadJson, InvalidParam, MissingParam
from pocketserver.roomserver.reads import RoomReader
from pocketserver.search.indexer import SearchIndexer
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage import search as search_store
from pocketserver.storage.events import StoredEvent
from pocketserver.sync.filters import check_room_event_filter, event_matches
from pocketserver.sync.tokens import StreamToken

ALL_KEYS = ("content.body", "content.name", "content.topic")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_CONTEXT = 20
MAX_TERMS = 20
_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(search_term: str) -> tuple[str, list[str]]:
    """An FTS5 query matching every word of the term as a prefix, and the words to highlight."""
    words = _WORD.findall(search_term.lower())[:MAX_TERMS]
    return " ".join(f'"{w}"*' for w in words), words


def _bounded_int(value: Any, name: str, default: int, high: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadJson(f"{name} must be a non-negative integer")
    return min(value, high)


class Search:
    """Answers search requests from the FTS index, through history visibility."""

    def __init__(self, reader: RoomReader, indexer: SearchIndexer) -> None:
        self._reader = reader
        self._db = reader.db
        self._indexer = indexer

    async def search(self, user_id: str, device_id: str, body: Mapping[str, Any], next_batch: str | None) -> dict:
        categories = body.get("search_categories")
        if not isinstance(categories, dict):
            raise MissingParam("search_categories is required")
        criteria = categories.get("room_events")
        if criteria is None:
            return {"search_categories": {}}
        if not isinstance(criteria, dict):
            raise BadJson("room_events must be an object")
        return {"search_categories": {"room_events": await self._room_events(user_id, device_id, criteria, next_batch)}}

    async def _room_events(self, user_id: str, device_id: str, criteria: Mapping[str, Any],
                           next_batch: str | None) -> dict[str, Any]:
        term = criteria.get("search_term")
        if not isinstance(term, str):
            raise MissingParam("room_events.search_term is required")
        keys = criteria.get("keys", list(ALL_KEYS))
        if not isinstance(keys, list) or not keys or any(k not in ALL_KEYS for k in keys):
            raise BadJson(f"keys must be a list of {', '.join(ALL_KEYS)}")
        order_by = criteria.get("order_by", "rank")
        if order_by not in ("rank", "recent"):
            raise BadJson("order_by must be 'rank' or 'recent'")
        room_filter = check_room_event_filter(criteria.get("filter", {}) or {})
        limit = _bounded_int(room_filter.get("limit"), "filter.limit", DEFAULT_LIMIT, MAX_LIMIT)
        context = criteria.get("event_context")
        if context is not None and not isinstance(context, dict):
            raise BadJson("event_context must be an object")
        include_state = criteria.get("include_state", False)
        groupings = criteria.get("groupings", {}) or {}
        group_keys = [g.get("key") for g in groupings.get("group_by", []) if isinstance(g, dict)] \
            if isinstance(groupings, dict) else []
        if any(k not in ("room_id", "sender") for k in group_keys):
            raise BadJson("group_by keys must be room_id or sender")
        offset = 0
        if next_batch is not None:
            if not (next_batch.isascii() and next_batch.isdigit()) or len(next_batch) > 9:
                raise InvalidParam("Invalid next_batch")
            offset = int(next_batch)

        rooms = set(await room_store.get_rooms_for_user(self._db, user_id))
        if "rooms" in room_filter:
            rooms &= set(room_filter["rooms"])
        rooms -= set(room_filter.get("not_rooms", []))
        match, words = fts_query(term)
        await self._indexer.index_waiting()     # so every message sent before the search is found
        hits = await search_store.search_events(self._db, match, rooms, keys, order_by_rank=order_by == "rank",
                                                limit=limit, offset=offset) if match else []
        count = await search_store.count_matches(self._db, match, rooms, keys) if match else 0
        events = await self._events_at([p for p, _ in hits])
        visible = await self._reader.visible(user_id, [e for e in events if e is not None])
        visible = [e for e in visible if event_matches(room_filter, event_type=e.type, sender=e.sender,
                                                        content=e.json.get("content", {}))]
        ranks = dict(hits)
        serialized = await self._reader.serialize(visible, user_id, device_id)
        results = []
        for event, client_event in zip(visible, serialized):
            item: dict[str, Any] = {"rank": -ranks.get(event.stream_ordering, 0.0), "result": client_event}
            if context is not None:
                item["context"] = await self._context(user_id, device_id, event, context)
            results.append(item)
        out: dict[str, Any] = {"count": count, "highlights": words, "results": results}
        if len(hits) == limit and offset + limit < count:    # more matches than this page reached
            out["next_batch"] = str(offset + limit)
        if include_state:
            out["state"] = {}
            for room_id in {e.room_id for e in visible}:
                state = await self._reader.current_state(user_id, room_id)
                out["state"][room_id] = await self._reader.serialize(state, user_id, device_id)
        if group_keys:
            out["groups"] = {}
            for key in group_keys:
                groups: dict[str, Any] = {}
                for order, event in enumerate(visible):
                    value = event.room_id if key == "room_id" else event.sender
                    groups.setdefault(value, {"results": [], "order": order})["results"].append(event.event_id)
                out["groups"][key] = groups
        return out

    async def _events_at(self, positions: list[int]) -> list[StoredEvent | None]:
        if not positions:
            return []
        marks = ",".join("?" * len(positions))
        rows = await self._db.fetchall(f"SELECT event_id FROM events WHERE stream_ordering IN ({marks})", positions)
        by_id = await event_store.get_events(self._db, [r[0] for r in rows])
        by_position = {e.stream_ordering: e for e in by_id.values()}
        return [by_position.get(p) for p in positions]

    async def _context(self, user_id: str, device_id: str, event: StoredEvent,
                       context: Mapping[str, Any]) -> dict[str, Any]:
        """Events around a result, with the senders' profiles when asked for."""
        before_n = _bounded_int(context.get("before_limit"), "before_limit", 5, MAX_CONTEXT)
        after_n = _bounded_int(context.get("after_limit"), "after_limit", 5, MAX_CONTEXT)
        before = await event_store.get_room_events(self._db, event.room_id, after=0, upto=event.stream_ordering - 1,
                                                   limit=before_n, backwards=True)
        after = await event_store.get_room_events(self._db, event.room_id, after=event.stream_ordering,
                                                  upto=await event_store.max_stream_ordering(self._db),
                                                  limit=after_n, backwards=False)
        before = await self._reader.visible(user_id, before)
        after = await self._reader.visible(user_id, after)
        out: dict[str, Any] = {
            "events_before": await self._reader.serialize(before, user_id, device_id),
            "events_after": await self._reader.serialize(after, user_id, device_id),
            "start": StreamToken(events=(before[-1].stream_ordering if before else event.stream_ordering) - 1).serialize(),
            "end": StreamToken(events=after[-1].stream_ordering if after else event.stream_ordering).serialize(),
        }
        if context.get("include_profile"):
            room = await self._reader.rs.require_room(event.room_id)
            profiles = {}
            for sender in {e.sender for e in [event, *before, *after]}:
                member = room.state.get(("m.room.member", sender))
                content = member.content if member else {}
                profiles[sender] = {k: content[k] for k in ("displayname", "avatar_url") if isinstance(content.get(k), str)}
            out["profile_info"] = profiles
        return out
