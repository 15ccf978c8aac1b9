"""The server name a database belongs to, recorded at its first use and checked at every start.

Spec: appendices, "Server Name" (user IDs, room IDs and events carry it; a server's name is fixed).
"""
from __future__ import annotations

from pocketserver.storage.database import Database, DatabaseError


async def claim_server_name(db: Database, server_name: str) -> None:
    """Record `server_name` for a database that has none; refuse another name than the recorded one."""
    row = db.lookup("SELECT server_name FROM server_identity WHERE id = 1")
    if row is None:
        await db.write(lambda tx: tx.execute(
            "INSERT OR IGNORE INTO server_identity (id, server_name) VALUES (1, ?)", (server_name,)))
        row = db.lookup("SELECT server_name FROM server_identity WHERE id = 1")
    if row is not None and row[0] != server_name:
        raise DatabaseError(
            f"this database belongs to the server {row[0]!r}, not {server_name!r}: user IDs, rooms and "
            f"events carry the name, so it cannot change once the server is in use; set server_name = "
            f"\"{row[0]}\" (in the config, or POCKETSERVER_SERVER_NAME)")
