"""Forgetting transaction IDs once a retransmission can no longer be expected.

A transaction ID lets the server tell a retransmission from a new request (spec:
client-server-api, "Transaction identifiers"). Each event sent and each send-to-device request
leaves one row; kept for ever they would grow the database with every message for nothing. As
Synapse does, they are kept for a day: a client retries within minutes. The event itself keeps
its transaction ID for `unsigned.transaction_id`, so forgetting the row changes nothing served.
"""
from __future__ import annotations

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

KEEP_MS = 24 * 3600 * 1000
MAX_DELETE = 5000     # rows of each table one pass deletes at most

# Neither table has an index on its time: once pruned, each holds a day of rows, so a scan is
# short, and an index would cost every message a write of its own.
_ANY_OLD = """SELECT EXISTS (SELECT 1 FROM transaction_ids WHERE created_ts < ?)
    OR EXISTS (SELECT 1 FROM to_device_txns WHERE received_ts < ?)"""


async def has_old(db: Database, now_ms: int) -> bool:
    """Whether any transaction ID is older than KEEP_MS (read on a reader: a table scan)."""
    cutoff = now_ms - KEEP_MS
    row = await db.fetchone(_ANY_OLD, (cutoff, cutoff))
    return bool(row and row[0])


async def delete_old(tx: Transaction, now_ms: int, *, most: int = MAX_DELETE) -> int:
    """Inside a write job: delete up to `most` transaction IDs of each kind older than KEEP_MS;
    returns how many. The first pass over a database that kept them all would otherwise hold the
    writer for as long as deleting every one takes; the next pass goes on."""
    cutoff = now_ms - KEEP_MS
    events = await tx.execute(
        "DELETE FROM transaction_ids WHERE (user_id, device_id, txn_id) IN (SELECT user_id, device_id, txn_id "
        "FROM transaction_ids WHERE created_ts < ? LIMIT ?)", (cutoff, most))
    to_device = await tx.execute(
        "DELETE FROM to_device_txns WHERE (user_id, device_id, txn_id) IN (SELECT user_id, device_id, txn_id "
        "FROM to_device_txns WHERE received_ts < ? LIMIT ?)", (cutoff, most))
    return events.rowcount + to_device.rowcount
