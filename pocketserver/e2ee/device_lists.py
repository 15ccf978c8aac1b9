"""Device-list tracking: who should re-query whose keys, for /sync and /keys/changes.

A user appears in another's `device_lists.changed` when they share a joined room and the user's
devices or keys changed, or when they start sharing a room; in `left` when they stop sharing any
room. Like Synapse, any joined room counts (not only encrypted ones) and a user always tracks
their own devices. Spec: client-server-api, "Tracking the device list for a user",
"Extensions to /sync" and "GET /_matrix/client/v3/keys/changes".
"""
from __future__ import annotations

from collections.abc import Iterable

from pocketserver.errors import MissingParam
from pocketserver.storage import e2ee_streams as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction
from pocketserver.sync.sources import SyncContext
from pocketserver.sync.tokens import StreamToken

CHANGED = "changed"        # subject now shares a room with observer (reported while they still do)
LEFT = "left"              # subject no longer shares a room with observer (reported if still so)
SIGNED = "signed"          # observer's user-signing key signed subject's master key (always reported)
# The stream keeps a user's latest change and a pair's latest observation of each kind only
# (storage/e2ee_streams.py): it grows with users and pairs, not with changes.


async def record_device_list_change(tx: Transaction, user_id: str) -> None:
    """Inside a write job: note that `user_id`'s devices or keys changed, and wake who tracks them."""
    position = await tx.next_stream_position(store.DEVICE_LISTS_STREAM)
    await store.insert_device_list_change(tx, position, user_id)
    tx.changes.users |= await store.get_users_sharing_rooms_tx(tx, user_id)


async def record_observation(tx: Transaction, observer: str, subjects: Iterable[str], kind: str) -> None:
    """Inside a write job: tell `observer`'s devices that `subjects` changed (e.g. after signing them)."""
    subjects = list(subjects)
    if not subjects:
        return
    position = await tx.next_stream_position(store.DEVICE_LISTS_STREAM)
    await store.insert_observations(tx, position, [(observer, s, kind) for s in subjects])
    tx.changes.users.add(observer)


async def record_membership_change(tx: Transaction, room_id: str, user_id: str, membership: str) -> None:
    """Inside the persist job, before the local membership is stored: note users who start or stop
    sharing a room with `user_id` because of this membership of `room_id`.

    Must run after the room's current state holds the new membership.
    """
    previous = await store.get_local_membership_tx(tx, user_id, room_id)
    joined_now = membership == "join"
    if (previous == "join") == joined_now:
        return
    # Who shares another room with the user tracks their devices already, and keeps doing so:
    # a row per such pair made a join cost rows in proportion to the room's size for nothing.
    others = await store.get_joined_members_tx(tx, room_id) - {user_id}
    if others:
        others -= await store.get_users_sharing_other_rooms_tx(tx, user_id, room_id)
    if not others:
        return
    kind = CHANGED if joined_now else LEFT
    position = await tx.next_stream_position(store.DEVICE_LISTS_STREAM)
    rows = [(other, user_id, kind) for other in others] + [(user_id, other, kind) for other in others]
    await store.insert_observations(tx, position, rows)
    tx.changes.users |= others | {user_id}


async def get_device_list_changes(db: Database, user_id: str, after: int, upto: int) -> tuple[set[str], set[str]]:
    """(changed, left) for `user_id` between two device_lists positions.

    Spec: client-server-api, "Extensions to /sync" (DeviceLists).
    """
    if upto <= after:
        return set(), set()
    shared = await store.get_users_sharing_rooms(db, user_id)
    changed = await store.get_changed_users(db, after, upto) & shared
    left: set[str] = set()
    for subject, kind in await store.get_observations(db, user_id, after, upto):
        if kind == SIGNED or (kind == CHANGED and subject in shared):
            changed.add(subject)
        elif kind == LEFT and subject not in shared:
            left.add(subject)
    return changed, left - changed


READ_ON = 2 ** 62       # a device_lists position past any the stream will reach


class DeviceLists:
    """The sync source for `device_lists`, and GET /keys/changes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        """Fill `device_lists` on an incremental sync. Spec: "Extensions to /sync"."""
        if ctx.since is None:
            return False
        changed, left = await get_device_list_changes(self._db, ctx.user_id, ctx.since.device_lists,
                                                      ctx.now.device_lists)
        ctx.response["device_lists"] = {"changed": sorted(changed), "left": sorted(left)}
        return bool(changed or left)

    async def get_keys_changes(self, user_id: str, from_token: str | None, to_token: str | None) -> dict[str, list[str]]:
        """Spec: client-server-api, "GET /_matrix/client/v3/keys/changes"."""
        if not from_token:
            raise MissingParam("Missing from")
        if not to_token:
            raise MissingParam("Missing to")
        after = StreamToken.parse(from_token)
        StreamToken.parse(to_token)       # checked, but read on to now: see below
        # The stream keeps each user's latest change only (storage/e2ee_streams.py), so a change
        # in (from, to] followed by another after `to` is found only by reading on to now. A user
        # reported who changed only after `to` costs the client one more key query; one missed
        # could cost it a device it never encrypts for. (Who shares a room is judged now, as in
        # get_device_list_changes.)
        changed, left = await get_device_list_changes(self._db, user_id, after.device_lists, READ_ON)
        return {"changed": sorted(changed), "left": sorted(left)}
