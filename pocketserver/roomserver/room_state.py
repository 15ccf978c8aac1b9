"""The in-memory view of one room that the roomserver builds events against."""
from __future__ import annotations

from dataclasses import dataclass

from pocketserver.rooms.events import Pdu, StateKey, pdu_from_checked
from pocketserver.rooms.versions import RoomVersion, get_room_version
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage import state as state_store
from pocketserver.storage.database import Database


@dataclass(slots=True)
class WriterCursor:
    """The room's latest state group as the writer sees it; jobs of one room advance it in order."""

    state_group: int
    chain_length: int


@dataclass(slots=True)
class RoomState:
    """A room's current state and forward extremities, including events queued but not yet committed.

    `state_group`/`chain_length` are where the room stood when this view was loaded; the writer's
    jobs use the shared `cursor`, which they advance as they commit.
    """

    room_id: str
    version: RoomVersion
    create: Pdu
    state: dict[StateKey, Pdu]
    extremities: list[Pdu]
    state_group: int
    chain_length: int
    cursor: WriterCursor | None = None

    def __post_init__(self) -> None:
        if self.cursor is None:
            self.cursor = WriterCursor(self.state_group, self.chain_length)

    def state_ids(self) -> dict[StateKey, str]:
        return {key: pdu.event_id for key, pdu in self.state.items()}

    def membership(self, user_id: str) -> str | None:
        member = self.state.get(("m.room.member", user_id))
        value = member.content.get("membership") if member else None
        return value if isinstance(value, str) else None

    def guests_may_join(self) -> bool:
        """Whether m.room.guest_access says `can_join`. Spec: client-server-api, "Guest Access"."""
        event = self.state.get(("m.room.guest_access", ""))
        return event is not None and event.content.get("guest_access") == "can_join"

    def copy(self) -> "RoomState":
        return RoomState(self.room_id, self.version, self.create, dict(self.state), list(self.extremities),
                         self.state_group, self.chain_length, self.cursor)


def pdu_from_stored(stored: event_store.StoredEvent, version: RoomVersion) -> Pdu:
    """A Pdu for a stored event (which may be the redacted form of the original).

    Every stored event passed `parse_pdu` before it was stored, so it is not checked again.
    """
    return pdu_from_checked(stored.json, version, stored.event_id)


async def load_room_state(db: Database, room_id: str) -> RoomState | None:
    """Load a room's current state from the database, or None if the room is unknown here."""
    room = await room_store.get_room(db, room_id)
    if room is None:
        return None
    version = get_room_version(room.room_version)
    state_ids = await room_store.get_current_state_ids(db, room_id)
    extremity_ids = await event_store.get_forward_extremities(db, room_id)
    stored = await event_store.get_events(db, [*state_ids.values(), *extremity_ids])
    state = {key: pdu_from_stored(stored[eid], version) for key, eid in state_ids.items()}
    extremities = [pdu_from_stored(stored[eid], version) for eid in extremity_ids]
    latest = max((stored[eid] for eid in extremity_ids), key=lambda e: e.stream_ordering)
    chain = await db.read(lambda conn: state_store.get_chain_length(conn, latest.state_after))
    return RoomState(room_id, version, state[("m.room.create", "")], state, extremities, latest.state_after, chain)
