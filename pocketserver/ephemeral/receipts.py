"""Receipts and the fully-read marker: validated here, persisted through the writer.

m.read and m.read.private go to the receipts table at a new "receipts" stream position;
m.fully_read is the user's m.fully_read room account data, as in Synapse. None of them moves
backwards: a receipt for an earlier event than the stored one is accepted and ignored.
Spec: client-server-api, "Receipts", "Fully read markers".
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pocketserver.ephemeral import add_ephemeral, ephemeral_wanted, require_joined
from pocketserver.errors import InvalidParam, NotFound
from pocketserver.push import counts as push_counts
from pocketserver.ratelimit import RateLimiter
from pocketserver.roomserver import RoomServer
from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import receipts as receipt_store
from pocketserver.storage.database import Database
from pocketserver.storage.receipts import ReceiptTarget
from pocketserver.storage.writer import Transaction
from pocketserver.sync.sources import SyncContext

# What a stored m.read / m.read.private receipt moves: (tx, user_id, room_id, stream position, thread_id).
OnRead = Callable[[Transaction, str, str, int, str | None], Awaitable[None]]

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE, FULLY_READ)
MAIN_THREAD = "main"
THREAD_HOPS = 3           # Spec: "a maximum of 3 hops is recommended" when finding an event's thread


def now_ms() -> int:
    return int(time.time() * 1000)


class Receipts:
    """Posts receipts and read markers for local users."""

    def __init__(self, db: Database, rs: RoomServer, *, limit: RateLimiter,
                 activity: Callable[[str], Awaitable[None]] | None = None,
                 on_read: OnRead = push_counts.on_read_receipt) -> None:
        self._db = db
        self._rs = rs
        self._on_read = on_read            # the unread counts (and badge pushes) a read receipt moves
        self._limit = limit                # per user: each receipt is a write and wakes the room's syncs
        self._activity = activity          # presence: reading counts as activity, as in Synapse

    async def post_receipt(self, user_id: str, room_id: str, receipt_type: str, event_id: str,
                           body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"."""
        self._limit.spend(user_id)
        if receipt_type not in RECEIPT_TYPES:
            raise InvalidParam(f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}")
        thread_id = body.get("thread_id")
        if "thread_id" in body:
            if not isinstance(thread_id, str) or not thread_id:
                raise InvalidParam("thread_id field must be a non-empty string")
            if receipt_type == FULLY_READ:
                raise InvalidParam(f"thread_id is not compatible with {FULLY_READ} receipts.")
        await require_joined(self._rs, user_id, room_id)
        target = self._target(room_id, event_id)
        if thread_id is not None:
            self._check_thread(target, thread_id)
        if receipt_type == FULLY_READ:
            await self._db.write(lambda tx: _set_fully_read(tx, user_id, room_id, target))
        else:
            await self._db.write(lambda tx: _insert(tx, user_id, room_id, receipt_type, target, thread_id,
                                                    self._on_read))
        if self._activity is not None:
            await self._activity(user_id)

    async def set_read_markers(self, user_id: str, room_id: str, body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/read_markers"."""
        self._limit.spend(user_id)
        markers: dict[str, str] = {}
        for key in RECEIPT_TYPES:
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.startswith("$"):
                raise InvalidParam(f"{key} must be an event ID")
            markers[key] = value
        await require_joined(self._rs, user_id, room_id)
        targets = {key: self._target(room_id, event_id) for key, event_id in markers.items()}

        async def job(tx: Transaction) -> None:
            if FULLY_READ in targets:
                await _set_fully_read(tx, user_id, room_id, targets[FULLY_READ])
            for key in (READ, READ_PRIVATE):
                if key in targets:
                    await _insert(tx, user_id, room_id, key, targets[key], None, self._on_read)

        if targets:
            await self._db.write(job)
        if self._activity is not None:
            await self._activity(user_id)

    def _target(self, room_id: str, event_id: str) -> ReceiptTarget:
        target = receipt_store.get_receipt_target(self._db, event_id) if event_id.startswith("$") else None
        if target is None or target.room_id != room_id:
            raise NotFound("Could not find event")
        return target

    def _check_thread(self, target: ReceiptTarget, thread_id: str) -> None:
        """Refuse a threaded receipt for an event outside that thread (400, as the spec lists).

        Spec: client-server-api, "Threaded read receipts".
        """
        thread = self._thread_of(target)
        if thread_id == MAIN_THREAD:
            if thread is not None:
                raise InvalidParam(f"{target.event_id} is in thread {thread}, not the main timeline")
            return
        if not thread_id.startswith("$"):
            raise InvalidParam("thread_id must be 'main' or the event ID of a thread root")
        if thread_id != thread and thread_id != target.event_id:
            raise InvalidParam(f"{target.event_id} is not in thread {thread_id}")

    def _thread_of(self, target: ReceiptTarget) -> str | None:
        """The thread root an event belongs to, following relations up to THREAD_HOPS; None for main."""
        current: ReceiptTarget | None = target
        for _ in range(THREAD_HOPS):
            if current is None or current.relates_to is None:
                return None
            if current.rel_type == "m.thread":
                return current.relates_to
            current = receipt_store.get_receipt_target(self._db, current.relates_to)
        return None


async def _insert(tx: Transaction, user_id: str, room_id: str, receipt_type: str, target: ReceiptTarget,
                  thread_id: str | None, on_read: OnRead) -> None:
    data: dict[str, Any] = {"ts": now_ms()}
    if thread_id is not None:
        data["thread_id"] = thread_id
    await receipt_store.insert_receipt(tx, room_id, receipt_type, user_id, thread_id, target.event_id,
                                       target.stream_ordering, data)
    # Both m.read and m.read.private clear notifications (spec: "Private read receipts").
    await on_read(tx, user_id, room_id, target.stream_ordering, thread_id)


async def _set_fully_read(tx: Transaction, user_id: str, room_id: str, target: ReceiptTarget) -> None:
    """Move the m.fully_read room account data forward to `target` (never back, as in Synapse)."""
    previous = await receipt_store.get_fully_read_tx(tx, user_id, room_id)
    old = await receipt_store.get_receipt_target_tx(tx, previous) if previous else None
    if old is not None and old.stream_ordering >= target.stream_ordering:
        return
    await account_data_store.set_account_data(tx, user_id, room_id, FULLY_READ, {"event_id": target.event_id})


class ReceiptSource:
    """Adds m.receipt to the ephemeral events of joined rooms whose receipts changed since the token.

    Spec: client-server-api, "Receipts" (m.receipt in /sync); m.read.private only to its owner.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        after = ctx.since.receipts if ctx.since is not None else 0
        if after >= ctx.now.receipts or not ctx.joined_rooms:
            return False
        rooms = [r for r in ctx.joined_rooms if ephemeral_wanted(ctx, r, "m.receipt")]
        contents: dict[str, dict[str, Any]] = {}
        for receipt in await receipt_store.get_receipts(self._db, rooms, after=after, upto=ctx.now.receipts):
            if receipt.receipt_type in receipt_store.PRIVATE_TYPES and receipt.user_id != ctx.user_id:
                continue
            by_event = contents.setdefault(receipt.room_id, {}).setdefault(receipt.event_id, {})
            by_event.setdefault(receipt.receipt_type, {})[receipt.user_id] = dict(receipt.data)
        for room_id, content in sorted(contents.items()):
            add_ephemeral(ctx, room_id, {"type": "m.receipt", "content": content})
        return bool(contents)
