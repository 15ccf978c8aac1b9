"""GET /sync: what changed for a user since a token, waiting on the notifier when nothing did.

Spec: client-server-api, "Syncing" and "GET /_matrix/client/v3/sync".
"""
from __future__ import annotations

import json
import time
from collections.abc import Container, Mapping
from typing import Any

from pocketserver.errors import BadJson, InvalidParam, NotJson, UserLocked
from pocketserver.rooms.client_event import apply_event_fields
from pocketserver.roomserver.reads import RoomReader
from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import accounts as account_store
from pocketserver.storage import events as event_store
from pocketserver.storage import filters as filter_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.database import Database
from pocketserver.storage.events import StoredEvent
from pocketserver.sync import room_sections as sections
from pocketserver.sync.filters import check_filter, event_matches
from pocketserver.sync.notifier import Notifier
from pocketserver.sync.sources import SyncContext, SyncSource
from pocketserver.sync.tokens import StreamToken

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMEOUT_MS = 5 * 60 * 1000
ALL_MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")


class SyncService:
    """Computes sync responses from the streams and long-polls on the notifier."""

    def __init__(self, db: Database, reader: RoomReader, notifier: Notifier) -> None:
        self._db = db
        self._reader = reader
        self._notifier = notifier
        self._sources: list[SyncSource] = []

    def add_source(self, source: SyncSource) -> None:
        """Let another area (typing, receipts, E2EE, push) add its fields to every sync."""
        self._sources.append(source)

    async def load_filter(self, user_id: str, value: str | None) -> dict[str, Any]:
        """A filter given inline as JSON or by its ID. Spec: "Filtering"."""
        if not value:
            return {}
        if value.lstrip().startswith("{"):
            try:
                definition = json.loads(value)
            except (ValueError, RecursionError):        # RecursionError: nested too deeply
                raise NotJson("filter is not valid JSON") from None
            if not isinstance(definition, dict):
                raise BadJson("filter must be an object")
            check_filter(definition)
            return definition
        # An unknown filter ID is a bad parameter of this request (400, as Synapse answers); only
        # GET .../filter/{filterId} answers 404 for it.
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise InvalidParam("No such filter")
        found = await filter_store.get_filter(self._db, user_id, int(value))
        if found is None:
            raise InvalidParam("No such filter")
        return found

    def current_token(self) -> StreamToken:
        n = self._notifier
        return StreamToken(events=n.position(event_store.STREAM), account_data=n.position(account_data_store.STREAM),
                           to_device=n.position("to_device"), receipts=n.position("receipts"),
                           typing=n.position("typing"), presence=n.position("presence"),
                           device_lists=n.position("device_lists"))

    async def sync(self, user_id: str, device_id: str, *, since: str | None, filter_value: str | None,
                   full_state: bool, timeout_ms: int, state_after: str | None = None) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/sync".

        `state_after`: the field to send each room's state at the end of its timeline in, instead of
        `state` at its start (`use_state_after`, spec v1.16; MSC4222's unstable name).
        """
        sync_filter = await self.load_filter(user_id, filter_value)
        since_token = StreamToken.parse(since) if since else None
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        deadline = time.monotonic() + timeout_ms / 1000
        memberships: dict[str, tuple[str, str, int]] | None = None
        while True:
            if memberships is None:
                memberships = await room_store.get_rooms_for_user(self._db, user_id, ALL_MEMBERSHIPS)
            waiter = self._notifier.register(user_id, [r for r, (m, _, _) in memberships.items()
                                                       if m in ("join", "invite", "knock")])
            try:
                now = self.current_token()
                response, empty = await self._compute(user_id, device_id, since_token, now, sync_filter, full_state,
                                                      memberships, state_after)
                remaining = deadline - time.monotonic()
                if not empty or since_token is None or full_state or remaining <= 0:
                    return response
                if not await self._notifier.wait(waiter, remaining):
                    return response
                if waiter.user_woken:
                    # A change of the user's memberships wakes the user (set_local_membership, forget_room);
                    # a wake for a room alone leaves them as read. So does a lock, which ends the poll.
                    end_if_locked(self._db, user_id)
                    memberships = None
            finally:
                self._notifier.unregister(waiter)

    async def _compute(self, user_id: str, device_id: str, since: StreamToken | None, now: StreamToken,
                       sync_filter: Mapping[str, Any], full_state: bool,
                       memberships: dict[str, tuple[str, str, int]],
                       state_after: str | None = None) -> tuple[dict[str, Any], bool]:
        room_filter = sync_filter.get("room", {})
        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        since_pos = since.events if since else 0
        changed = await event_store.get_rooms_with_events(self._db, since_pos, now.events) if since else None
        account_data = await self._account_data(user_id, since, now)
        room_data: dict[str, list] = {}
        for room_id, data_type, content in account_data:
            # The room filter's account_data (filter.yaml, RoomFilter) picks the types, as Synapse.
            if room_id and event_matches(room_filter.get("account_data"), event_type=data_type, sender=user_id):
                room_data.setdefault(room_id, []).append({"type": data_type, "content": content})
        joined: dict[str, tuple[int | None, bool]] = {}      # room_id -> (since, full state)
        removed = await self._removed_from(user_id, memberships, now.events, room_filter) \
            if since is None and not room_filter.get("include_leave") else frozenset()
        for room_id, (membership, event_id, member_pos) in memberships.items():
            # Invites and knocks are listed whatever the filter's rooms/not_rooms say, as Synapse
            # lists them: a bot that syncs only its own rooms still hears of new ones.
            if member_pos > now.events or (membership not in ("invite", "knock")
                                           and not _room_wanted(room_filter, room_id)):
                continue
            newly = since is None or member_pos > since_pos
            if membership == "join":
                if not (newly or full_state or room_id in changed or room_id in room_data):
                    continue
                joined[room_id] = (since_pos if not newly else None, full_state or newly)
            elif membership in ("invite", "knock") and newly:
                key = "invite_state" if membership == "invite" else "knock_state"
                state = await sections.stripped_state(self._reader, room_id, event_id)
                inviter = state[-1]["sender"] if state else None      # the member event comes last
                if membership == "invite" and inviter in await self._reader.ignored.of(user_id):
                    continue    # "Invites to new rooms by ignored users will not be sent to the client."
                rooms[membership][room_id] = {key: {"events": state}}
            elif membership in ("leave", "ban") and (
                    (since is not None and newly) or (since is None and room_filter.get("include_leave"))
                    or room_id in removed):
                rooms["leave"][room_id] = await self._left_room(user_id, device_id, room_id, since_pos if since else None,
                                                                member_pos, room_filter, sync_filter, state_after)
                # A left room's own account data (its tags, markers) as of the stretch (sync.yaml,
                # LeftRoom), as Synapse sends it; it was always empty.
                rooms["leave"][room_id]["account_data"] = {"events": room_data.get(room_id, [])}
        for room_id, entry in (await self._joined_rooms(user_id, device_id, joined, now.events, room_filter,
                                                        sync_filter, state_after, memberships)).items():
            entry["account_data"] = {"events": room_data.get(room_id, [])}
            rooms["join"][room_id] = entry
        global_data = [{"type": t, "content": c} for r, t, c in account_data if r == ""]
        global_data = [e for e in global_data
                       if event_matches(sync_filter.get("account_data"), event_type=e["type"], sender=user_id)]
        response: dict[str, Any] = {
            "next_batch": now.serialize(),
            "rooms": rooms,
            "account_data": {"events": global_data},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
        }
        empty = not any(rooms.values()) and not global_data
        joined_now = frozenset(r for r, (m, _, pos) in memberships.items() if m == "join" and pos <= now.events)
        newly_joined = frozenset(r for r, (room_since, _) in joined.items() if room_since is None) if since else frozenset()
        ctx = SyncContext(user_id, device_id, since, now, sync_filter, full_state, joined_now, response, state_after,
                          newly_joined)
        for source in self._sources:
            if await source.add_to_sync(ctx):
                empty = False
        response["rooms"] = {k: v for k, v in response["rooms"].items() if v}
        return response, empty

    async def _removed_from(self, user_id: str, memberships: Mapping[str, tuple[str, str, int]],
                            upto: int, room_filter: Mapping[str, Any]) -> frozenset[str]:
        """The rooms the user was kicked or banned from (not left of their own accord): an initial
        sync lists them even without `include_leave`, as Synapse does ("always send down rooms we
        were banned from or kicked from"), so a client signed in afresh learns it was removed."""
        wanted = {r: v for r, v in memberships.items() if v[2] <= upto and _room_wanted(room_filter, r)}
        removed = {r for r, (m, _, _) in wanted.items() if m == "ban"}
        left = {event_id: r for r, (m, event_id, _) in wanted.items() if m == "leave"}
        if left:    # whether someone else sent the leave: a kick, a withdrawn invite, a refused knock
            events = await self._reader.cache.events(left)
            removed |= {room_id for event_id, room_id in left.items()
                        if event_id in events and events[event_id].sender != user_id}
        return frozenset(removed)

    async def _account_data(self, user_id: str, since: StreamToken | None, now: StreamToken) -> list[tuple[str, str, Any]]:
        return await account_data_store.get_account_data_since(self._db, user_id, since.account_data if since else 0,
                                                               now.account_data)

    async def _joined_rooms(self, user_id: str, device_id: str, plan: Mapping[str, tuple[int | None, bool]],
                            upto: int, room_filter: Mapping[str, Any], sync_filter: Mapping[str, Any],
                            state_after: str | None = None,
                            memberships: Mapping[str, tuple[str, str, int]] | None = None) -> dict[str, dict[str, Any]]:
        """The entries of joined rooms ({room_id: (since, full state)}), every room's reads done together."""
        if not plan:
            return {}
        timeline_filter, state_filter = room_filter.get("timeline"), room_filter.get("state")
        limit = (timeline_filter or {}).get("limit", DEFAULT_TIMELINE_LIMIT)
        timelines = await sections.load_timelines(self._reader, user_id, {r: (since or 0, upto)
                                                                          for r, (since, _) in plan.items()},
                                                  limit=limit, timeline_filter=timeline_filter)
        if state_after:
            # The state the section is taken against: at the timeline's end instead of its start.
            starts = await sections.end_states(self._reader, timelines, [
                r for r, (since, full) in plan.items()
                if sections.needs_end_state(timelines[r], since=since, full=full)], upto)
            state_ids = {r: await sections.state_after_ids(self._reader, user_id, r, timelines[r], since=since,
                                                           full=full, state_filter=state_filter,
                                                           end_state=starts.get(r, {}))
                         for r, (since, full) in plan.items()}
        else:
            starts = await sections.start_states(self._reader, timelines, [
                r for r, (since, full) in plan.items()
                if sections.needs_start_state(timelines[r], since=since, full=full, state_filter=state_filter)])
            state_ids = {r: await sections.state_section_ids(self._reader, user_id, r, timelines[r], since=since,
                                                             full=full, state_filter=state_filter,
                                                             start_state=starts.get(r))
                         for r, (since, full) in plan.items()}
        # A state_after section repeats the timeline's state events: those are at hand already.
        stored = {e.event_id: e for r in plan for e in timelines[r].events} if state_after else {}
        stored.update(await self._reader.cache.events(i for ids in state_ids.values() for i in ids if i not in stored))
        states = {r: sections.state_events({i: stored[i] for i in ids if i in stored}, state_filter)
                  for r, ids in state_ids.items()}
        # A summary goes with a full state section or a membership change (spec: RoomSummary).
        summarised = [r for r, (_, full) in plan.items()
                      if full or any(e.type == "m.room.member" for e in (*timelines[r].events, *states[r]))]
        summaries = await sections.summaries(self._reader, user_id, summarised) if summarised else {}
        if state_filter and state_filter.get("lazy_load_members"):
            await self._add_heroes(states, timelines, starts, summaries, state_filter)
        # One serialisation for every room: one read of prev_content and one of bundled relations,
        # each event once (a state_after section and its timeline share theirs).
        unique = list({e.event_id: e for r in plan for e in (*timelines[r].events, *states[r])}.values())
        # Bundled aggregations only in limited timelines (spec: "Aggregations of child events"):
        # in a whole one the client sees the children themselves.
        bundle = {e.event_id for r in plan if timelines[r].limited for e in timelines[r].events}
        serialized = dict(zip((e.event_id for e in unique),
                              await self._serialize(unique, user_id, device_id, sync_filter, memberships, bundle)))
        entries: dict[str, dict[str, Any]] = {}
        for room_id in plan:
            timeline, state = timelines[room_id], states[room_id]
            entry: dict[str, Any] = {
                "timeline": {"events": [serialized[e.event_id] for e in timeline.events],
                             "limited": timeline.limited,
                             "prev_batch": StreamToken(events=timeline.start_position).serialize()},
                state_after or "state": {"events": [serialized[e.event_id] for e in state]},
                "ephemeral": {"events": []},
                "unread_notifications": {"notification_count": 0, "highlight_count": 0},
            }
            entry["summary"] = summaries.get(room_id, {})
            entries[room_id] = entry
        return entries

    async def _add_heroes(self, states: dict[str, list[StoredEvent]], timelines: Mapping[str, sections.Timeline],
                          starts: Mapping[str, Mapping[sections.StateKey, str]],
                          summaries: Mapping[str, Mapping[str, Any]], state_filter: Mapping[str, Any]) -> None:
        """With lazy-loaded members, the heroes' membership events join the state section (unless
        the timeline or the section has them). Spec: RoomSummary `m.heroes`."""
        wanted: dict[str, list[str]] = {}
        for room_id, summary in summaries.items():
            shown = {e.state_key for e in (*timelines[room_id].events, *states[room_id]) if e.type == "m.room.member"}
            start = starts.get(room_id, {})
            wanted[room_id] = [start[("m.room.member", hero)] for hero in summary.get("m.heroes", [])
                               if hero not in shown and ("m.room.member", hero) in start]
        if not any(wanted.values()):
            return
        stored = await self._reader.cache.events(i for ids in wanted.values() for i in ids)
        for room_id, ids in wanted.items():
            if ids:
                section = {e.event_id: e for e in states[room_id]}
                section.update((i, stored[i]) for i in ids if i in stored)
                states[room_id] = sections.state_events(section, state_filter)

    async def _left_room(self, user_id: str, device_id: str, room_id: str, since: int | None, leave_pos: int,
                         room_filter: Mapping[str, Any], sync_filter: Mapping[str, Any],
                         state_after: str | None = None) -> dict[str, Any]:
        timeline_filter, state_filter = room_filter.get("timeline"), room_filter.get("state")
        limit = (timeline_filter or {}).get("limit", DEFAULT_TIMELINE_LIMIT)
        timeline = await sections.load_timeline(self._reader, user_id, room_id, after=since or 0, upto=leave_pos,
                                                limit=limit, timeline_filter=timeline_filter)
        if state_after:     # the state as the user left it
            end = await sections.end_states(self._reader, {room_id: timeline}, [room_id], leave_pos)
            ids = await sections.state_after_ids(self._reader, user_id, room_id, timeline, since=since,
                                                 full=since is None, state_filter=state_filter, end_state=end[room_id])
            state = sections.state_events(await self._reader.cache.events(ids), state_filter)
        else:
            state = await sections.state_section(self._reader, user_id, room_id, timeline, since=since,
                                                 full=since is None, state_filter=state_filter)
        return {"timeline": {"events": await self._serialize(timeline.events, user_id, device_id, sync_filter,
                                                             bundle=timeline.limited),
                             "limited": timeline.limited,
                             "prev_batch": StreamToken(events=timeline.start_position).serialize()},
                state_after or "state": {"events": await self._serialize(state, user_id, device_id, sync_filter,
                                                                         bundle=False)},
                "account_data": {"events": []}}

    async def _serialize(self, events: list[StoredEvent], user_id: str, device_id: str, sync_filter: Mapping[str, Any],
                         memberships: Mapping[str, tuple[str, str, int]] | None = None,
                         bundle: bool | Container[str] = True) -> list[dict[str, Any]]:
        if sync_filter.get("event_format") == "federation":
            return [dict(e.json, event_id=e.event_id) for e in events]
        out = await self._reader.serialize(events, user_id, device_id, include_room_id=False,
                                           latest_memberships=memberships, bundle=bundle)
        fields = sync_filter.get("event_fields")
        return [apply_event_fields(e, fields) for e in out] if fields else out


def end_if_locked(db: Database, user_id: str) -> None:
    """End a long-poll woken for its user with 401 M_USER_LOCKED if the account was locked
    meanwhile (a lock wakes the user's polls). Spec: client-server-api, "Account locking"."""
    if account_store.is_locked(db, user_id):
        raise UserLocked()


def _room_wanted(room_filter: Mapping[str, Any], room_id: str) -> bool:
    if "not_rooms" in room_filter and room_id in room_filter["not_rooms"]:
        return False
    return "rooms" not in room_filter or room_id in room_filter["rooms"]
