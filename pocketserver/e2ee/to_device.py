"""Send-to-device messaging: a per-device inbox on the "to_device" stream, delivered through /sync.

A message stays in the inbox until the device syncs with a `since` token at or beyond its
position, which acknowledges it. Spec: client-server-api, "Send-to-Device messaging".
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pocketserver.accounts.auth import Requester
from pocketserver.errors import BadJson, MissingParam
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import e2ee as key_store
from pocketserver.storage import e2ee_streams as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction
from pocketserver.sync.sources import SyncContext

MAX_MESSAGES_PER_SYNC = 100
MAX_TYPE_BYTES = 255
MAX_TXN_ID_BYTES = 255
ALL_DEVICES = "*"
# Transaction IDs are forgotten after a day (storage.transaction_ids), or with the sending device.


def parse_messages(messages: Any, server_name: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The `messages` map of a send, keeping only local recipients (federation is off).

    Spec: client-server-api, "PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}".
    """
    if messages is None:
        raise MissingParam("Missing messages")
    if not isinstance(messages, dict):
        raise BadJson("messages must be an object")
    local: dict[str, dict[str, dict[str, Any]]] = {}
    for user_id, devices in messages.items():
        try:
            user = UserID.parse(user_id)
        except InvalidIdentifier:
            continue    # skipped, not the whole request refused (as Synapse)
        if not isinstance(devices, dict) or not all(isinstance(c, dict) for c in devices.values()):
            raise BadJson("messages must map user IDs to device IDs to content objects")
        if user.server_name == server_name:
            local[user_id] = devices
    return local


class ToDevice:
    """Sends to-device messages and is the sync source for `to_device`."""

    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def send_to_device(self, requester: Requester, event_type: str, txn_id: str, body: Mapping[str, Any]) -> None:
        """Queue one message per target device, once per (device, txn_id).

        Spec: client-server-api, "PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}".
        """
        if not event_type or len(event_type.encode()) > MAX_TYPE_BYTES:
            raise BadJson("Event type must be 1-255 bytes")
        if not txn_id or len(txn_id.encode()) > MAX_TXN_ID_BYTES:
            raise BadJson("Transaction ID must be 1-255 bytes")
        messages = parse_messages(body.get("messages"), self._server_name)
        sender, sender_device = requester.user_id, requester.device_id

        async def job(tx: Transaction) -> None:
            if await store.to_device_txn_seen(tx, sender, sender_device, txn_id):
                return
            await store.insert_to_device_txn(tx, sender, sender_device, txn_id, int(time.time() * 1000))
            for user_id, devices in messages.items():
                existing = set(await key_store.get_device_ids_tx(tx, user_id))
                for device_id, content in devices.items():
                    targets = sorted(existing) if device_id == ALL_DEVICES else [device_id] if device_id in existing else []
                    for target in targets:
                        position = await tx.next_stream_position(store.TO_DEVICE_STREAM)
                        await store.insert_to_device_message(tx, position, user_id, target,
                                                             {"sender": sender, "type": event_type, "content": content})
                    if targets:
                        tx.changes.users.add(user_id)

        await self._db.write(job)

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        """Deliver pending messages (at most 100), first deleting those the `since` token acknowledges.

        When more are waiting, `next_batch` stops at the last one delivered so the rest follow.
        Spec: client-server-api, "Send-to-Device messaging" ("Extensions to /sync").
        """
        user_id, device_id = ctx.user_id, ctx.device_id
        if ctx.since is not None and ctx.since.to_device > 0:
            acknowledged = ctx.since.to_device
            if store.has_messages(self._db, user_id, device_id, acknowledged):
                await self._db.write(lambda tx: store.delete_acknowledged_messages(tx, user_id, device_id, acknowledged))
        pending = await store.get_pending_messages(self._db, user_id, device_id, ctx.now.to_device,
                                                   MAX_MESSAGES_PER_SYNC + 1)
        if not pending:
            return False
        if len(pending) > MAX_MESSAGES_PER_SYNC:
            pending = pending[:MAX_MESSAGES_PER_SYNC]
            ctx.response["next_batch"] = ctx.now._replace(to_device=pending[-1][0]).serialize()
        ctx.response["to_device"] = {"events": [message for _, message in pending]}
        return True
