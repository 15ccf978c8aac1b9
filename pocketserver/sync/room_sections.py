"""Building the per-room parts of a /sync response: timeline, state, summary, invites and leaves.

Spec: client-server-api, "GET /_matrix/client/v3/sync" (Joined Room, Invited Room, Left Room).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pocketserver.roomserver.reads import RoomReader
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.events import StoredEvent
from pocketserver.sync.filters import event_matches

StateKey = tuple[str, str]
# State entries shown in an invite or knock (spec: "Stripped state", recommended types).
STRIPPED_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias",
                  "m.room.encryption", "m.room.topic", "m.room.history_visibility", "m.room.guest_access")
MAX_FETCH_ROUNDS = 5
NAMING_TYPES = ("m.room.name", "m.room.canonical_alias")
MAX_HEROES = 5


class Timeline(NamedTuple):
    events: list[StoredEvent]
    limited: bool
    start_position: int      # the stream position just before the first timeline event
    # The room's newest event at start_position, when reading the timeline already fetched it.
    before: StoredEvent | None = None
    # Whether the read reached the room's first event: nothing comes before the timeline.
    from_room_start: bool = False
    # The events read, newest first: the room's newest ones in the range, visible or not.
    fetched: Sequence[StoredEvent] = ()
    # Whether `fetched` holds every event of the range.
    covered: bool = False


async def load_timeline(reader: RoomReader, user_id: str, room_id: str, *, after: int, upto: int, limit: int,
                        timeline_filter: Mapping[str, Any] | None) -> Timeline:
    """The newest `limit` visible, filter-matching events in (after, upto], oldest first.

    `limited` is true when more such events exist before them.
    """
    timelines = await load_timelines(reader, user_id, {room_id: (after, upto)}, limit=limit,
                                     timeline_filter=timeline_filter)
    return timelines[room_id]


async def load_timelines(reader: RoomReader, user_id: str, ranges: Mapping[str, tuple[int, int]], *, limit: int,
                         timeline_filter: Mapping[str, Any] | None) -> dict[str, Timeline]:
    """`load_timeline` for many rooms ({room_id: (after, upto)}), reading all of them at once."""
    fetched: dict[str, list[StoredEvent]] = {room_id: [] for room_id in ranges}
    chosen: dict[str, list[StoredEvent]] = {room_id: [] for room_id in ranges}
    cursors = {room_id: upto for room_id, (_, upto) in ranges.items()}
    exhausted: set[str] = set()      # rooms whose every event in the range was fetched
    pending = [room_id for room_id in ranges]
    # The first read takes just enough for a room whose events are all visible (limit + 1 tells
    # `limited`); the later ones, for rooms where some were not, take more at a time.
    for size in (limit + 1, *[max(2 * limit, 10)] * MAX_FETCH_ROUNDS):
        exhausted.update(r for r in pending if cursors[r] <= ranges[r][0])
        pending = [r for r in pending if len(chosen[r]) <= limit and cursors[r] > ranges[r][0]]
        if not pending:
            break
        batches = await event_store.get_latest_room_events(
            reader.db, [(r, ranges[r][0], cursors[r]) for r in pending], size, known=reader.cache.known_events)
        exhausted.update(r for r in pending if len(batches[r]) < size)
        pending = [r for r in pending if batches[r]]
        rows = [e for r in pending for e in batches[r]]
        reader.cache.remember(rows)
        visible = {e.event_id for e in await reader.visible(user_id, rows)}
        for r in pending:
            batch = batches[r]
            cursors[r] = batch[-1].stream_ordering - 1
            fetched[r] += batch
            chosen[r] += [e for e in batch if e.event_id in visible and event_matches(
                timeline_filter, event_type=e.type, sender=e.sender, content=e.json.get("content", {}))]
    return {room_id: _timeline(chosen[room_id], fetched[room_id], limit, upto, covered=room_id in exhausted,
                               complete=after == 0 and room_id in exhausted)
            for room_id, (after, upto) in ranges.items()}


def _timeline(chosen: list[StoredEvent], fetched: list[StoredEvent], limit: int, upto: int, *,
              covered: bool, complete: bool) -> Timeline:
    """The timeline from the chosen events (newest first) out of the consecutive events `fetched`.

    `covered`: `fetched` holds every event of the range; `complete`: of the room up to `upto`.
    """
    events = list(reversed(chosen[:limit]))
    start = events[0].stream_ordering - 1 if events else upto
    # The fetched events are the room's newest ones up to `upto`, in order: the one after the
    # timeline's first event there is the room's newest event at `start`.
    index = next(i for i, e in enumerate(fetched) if e is events[0]) + 1 if events else 0
    before = fetched[index] if index < len(fetched) else None
    return Timeline(events, len(chosen) > limit, start, before, from_room_start=complete and before is None,
                    fetched=fetched, covered=covered)


async def state_at(reader: RoomReader, room_id: str, position: int,
                   latest: StoredEvent | None = None) -> dict[StateKey, str]:
    """The room's state after its newest event at or before `position` ({} before the room existed).

    `latest` is that newest event when the caller already has it.
    """
    if latest is None or latest.stream_ordering > position:
        latest = await event_store.get_latest_event_at(reader.db, room_id, position)
    return dict(await reader.cache.group(latest.state_after)) if latest else {}


async def start_states(reader: RoomReader, timelines: Mapping[str, Timeline],
                       room_ids: Iterable[str]) -> dict[str, dict[StateKey, str]]:
    """`state_at` each room's timeline start, for many rooms: their state groups read together."""
    out: dict[str, dict[StateKey, str]] = {}
    groups: dict[str, int] = {}
    for room_id in room_ids:
        timeline = timelines[room_id]
        if timeline.before is not None and timeline.before.stream_ordering <= timeline.start_position:
            groups[room_id] = timeline.before.state_after
        elif timeline.from_room_start:
            out[room_id] = {}            # the timeline starts with the room
        else:
            out[room_id] = await state_at(reader, room_id, timeline.start_position, timeline.before)
    loaded = await reader.cache.groups(groups.values()) if groups else {}
    for room_id, group_id in groups.items():
        out[room_id] = dict(loaded[group_id])
    return out


async def state_section(reader: RoomReader, user_id: str, room_id: str, timeline: Timeline, *, since: int | None,
                        full: bool, state_filter: Mapping[str, Any] | None) -> list[StoredEvent]:
    """State events to send: everything up to the timeline for a full sync, else the gap's changes."""
    ids = await state_section_ids(reader, user_id, room_id, timeline, since=since, full=full,
                                  state_filter=state_filter)
    return state_events(await reader.cache.events(ids), state_filter)


def needs_start_state(timeline: Timeline, *, since: int | None, full: bool,
                      state_filter: Mapping[str, Any] | None) -> bool:
    """Whether `state_section_ids` uses the state at the timeline's start."""
    return full or since is None or timeline.limited or bool(state_filter and state_filter.get("lazy_load_members")) \
        or state_left_out(timeline)


def state_left_out(timeline: Timeline) -> bool:
    """Whether state events of an incremental sync's range are missing from its timeline, though
    not before a limited timeline's start: the timeline's filter (or history visibility) left them
    out, or, for a timeline that is not limited, the read did not reach the range's start."""
    if not timeline.limited and not timeline.covered:
        return True
    shown = {e.event_id for e in timeline.events}
    return any(e.state_key is not None and e.event_id not in shown
               and (not timeline.limited or e.stream_ordering > timeline.start_position) for e in timeline.fetched)


async def state_section_ids(reader: RoomReader, user_id: str, room_id: str, timeline: Timeline, *,
                            since: int | None, full: bool, state_filter: Mapping[str, Any] | None,
                            start_state: Mapping[StateKey, str] | None = None) -> list[str]:
    """The IDs of the state events `state_section` sends (`start_state`: from `start_states`)."""
    lazy = bool(state_filter and state_filter.get("lazy_load_members"))
    if not needs_start_state(timeline, since=since, full=full, state_filter=state_filter):
        start_state = {}
    elif start_state is None:
        start_state = await state_at(reader, room_id, timeline.start_position, timeline.before)
    in_timeline = {e.event_id for e in timeline.events}
    left_out = since is not None and not full and state_left_out(timeline)
    if full or since is None:
        ids = start_state
    elif timeline.limited or left_out:
        # What changed since `since`, as of the timeline's start; and, when state events were left
        # out of the timeline, as of its end too, less what the timeline shows: Synapse's answer
        # (handlers/sync.py, _calculate_state), so a change a filter hid is still sent. Spec:
        # "Updates to the state, between the time indicated by the since parameter, and the start
        # of the timeline".
        before = await state_at(reader, room_id, since)
        states = [start_state]
        if left_out and timeline.fetched:
            newest = timeline.fetched[0]
            states.insert(0, await state_at(reader, room_id, newest.stream_ordering, newest))
        ids = {}
        for state in states:
            for k, v in state.items():
                if k not in ids and before.get(k) != v and v not in in_timeline:
                    ids[k] = v
    else:
        ids = {}
    if lazy:
        wanted = {e.sender for e in timeline.events} | {user_id}
        ids = {k: v for k, v in ids.items() if k[0] != "m.room.member" or k[1] in wanted}
        for member in wanted:
            key = ("m.room.member", member)
            if key in start_state and not any(e.event_id == start_state[key] for e in timeline.events):
                ids.setdefault(key, start_state[key])
    return [v for v in ids.values() if v not in in_timeline]


def needs_end_state(timeline: Timeline, *, since: int | None, full: bool) -> bool:
    """Whether `state_after_ids` uses the state at the timeline's end: not for an incremental sync
    in which nothing happened in the room."""
    return full or since is None or not timeline.covered or bool(timeline.fetched)


async def end_states(reader: RoomReader, timelines: Mapping[str, Timeline], room_ids: Iterable[str],
                     upto: int) -> dict[str, dict[StateKey, str]]:
    """Each room's state at the end of its timeline (position `upto`): after the newest event the
    timeline's read took in, those rooms' state groups read together."""
    out: dict[str, dict[StateKey, str]] = {}
    groups: dict[str, int] = {}
    for room_id in room_ids:
        fetched = timelines[room_id].fetched
        if fetched:
            groups[room_id] = fetched[0].state_after
        else:
            out[room_id] = await state_at(reader, room_id, upto)
    loaded = await reader.cache.groups(groups.values()) if groups else {}
    for room_id, group_id in groups.items():
        out[room_id] = dict(loaded[group_id])
    return out


async def state_after_ids(reader: RoomReader, user_id: str, room_id: str, timeline: Timeline, *,
                          since: int | None, full: bool, state_filter: Mapping[str, Any] | None,
                          end_state: Mapping[StateKey, str]) -> list[str]:
    """The IDs for `state_after` out of the state at the timeline's end (`end_states`): all of it
    for a full sync, else what changed since `since`.

    Unlike `state`, events the timeline holds are sent here too: a client that asked for this
    section takes the room's state from it alone. With lazy-loaded members, only the members the
    timeline shows (and, in a full sync, the user) are sent. An incremental sync whose read of the
    range took in every event needs no read of the state before it: the keys those events set are
    what changed. Spec: client-server-api, "GET /_matrix/client/v3/sync" (`use_state_after`, v1.16).
    """
    if not needs_end_state(timeline, since=since, full=full):
        return []
    incremental = not full and since is not None
    if not incremental:
        ids = dict(end_state)
    elif timeline.covered:
        changed = {(e.type, e.state_key) for e in timeline.fetched if e.state_key is not None}
        ids = {k: end_state[k] for k in changed if k in end_state}
    else:
        before = await state_at(reader, room_id, since)
        ids = {k: v for k, v in end_state.items() if before.get(k) != v}
    if state_filter and state_filter.get("lazy_load_members"):
        wanted = {e.sender for e in timeline.events} | (set() if incremental else {user_id})
        ids = {k: v for k, v in ids.items() if k[0] != "m.room.member" or k[1] in wanted}
        ids.update((key, end_state[key]) for key in (("m.room.member", m) for m in wanted) if key in end_state)
    return list(ids.values())


def state_events(stored: Mapping[str, StoredEvent], state_filter: Mapping[str, Any] | None) -> list[StoredEvent]:
    """The state events of a section in stream order, as the state filter allows."""
    events = sorted(stored.values(), key=lambda e: e.stream_ordering)
    return [e for e in events if event_matches(state_filter, event_type=e.type, sender=e.sender)]


async def summaries(reader: RoomReader, user_id: str, room_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each room's summary: member counts, and m.heroes unless it has a name or canonical alias.

    Read from current state for all the rooms at once. Like Synapse, a name or alias that is
    empty counts as unset; heroes are joined members first, then invited ones, each in the order
    they got that membership (`storage.rooms.get_heroes`). Spec: client-server-api, "GET /_matrix/client/v3/sync" (RoomSummary),
    "Calculating the display name for a room".
    """
    counts = await room_store.get_member_counts(reader.db, room_ids)
    naming = await room_store.get_current_state_of_types(reader.db, room_ids, NAMING_TYPES)
    stored = await reader.cache.events(i for ids in naming.values() for i in ids.values())
    named = {room_id for room_id, ids in naming.items()
             if any(_names(stored.get(event_id), event_type) for event_type, event_id in ids.items())}
    heroes = await room_store.get_heroes(reader.db, [r for r in room_ids if r not in named], user_id, MAX_HEROES)
    out: dict[str, dict[str, Any]] = {}
    for room_id in room_ids:
        joined, invited = counts.get(room_id, (0, 0))
        out[room_id] = {"m.joined_member_count": joined, "m.invited_member_count": invited}
        if room_id not in named:
            out[room_id]["m.heroes"] = heroes.get(room_id, [])
    return out


def _names(event: StoredEvent | None, event_type: str) -> bool:
    """Whether an m.room.name or m.room.canonical_alias event gives the room a non-empty name."""
    if event is None:
        return False
    value = event.json.get("content", {}).get("name" if event_type == "m.room.name" else "alias")
    return isinstance(value, str) and value != ""


async def stripped_state(reader: RoomReader, room_id: str, member_event_id: str) -> list[dict[str, Any]]:
    """Stripped state for an invite or knock: the room's key state plus the member event itself,
    last (sync reads the inviter from it).

    Spec: client-server-api, "Stripped state".
    """
    member = await event_store.get_event(reader.db, member_event_id)
    if member is None:
        return []
    state = await reader.cache.group(member.state_after)
    keys = [k for k in state if k[0] in STRIPPED_TYPES and k[1] == ""]
    inviter_key = ("m.room.member", member.sender)
    if inviter_key in state and member.sender != member.state_key:
        keys.append(inviter_key)
    stored = await event_store.get_events(reader.db, [state[k] for k in keys])
    out = [{"type": e.type, "state_key": e.state_key, "content": e.json.get("content", {}), "sender": e.sender}
           for e in stored.values()]
    out.append({"type": member.type, "state_key": member.state_key, "content": member.json.get("content", {}),
                "sender": member.sender, "event_id": member.event_id,
                "origin_server_ts": member.json.get("origin_server_ts")})
    return out
