"""WAL checkpoints run beside the writer: commits never checkpoint, the WAL stays bounded."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from pocketserver.storage.checkpoint import TARGET_FRAMES
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


async def test_checkpoints_keep_the_wal_bounded(tmp_path: Path) -> None:
    db = Database(tmp_path / "wal.db")
    await db.open()
    try:
        await db.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)"))
        assert db._write_conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0

        async def insert(tx: Transaction) -> None:     # ~3 pages per commit
            await tx.executemany("INSERT INTO t (v) VALUES (?)", [(b"x" * 3000,)] * 3)

        largest = 0
        for _ in range(1500):
            await db.write(insert)
            largest = max(largest, (tmp_path / "wal.db-wal").stat().st_size)
        assert db.checkpointer.checkpoints >= 2
        # The interval adapted to ~3 frames a commit: the WAL never got far past the target.
        assert db.checkpointer.interval < 1000
        assert largest < 4 * TARGET_FRAMES * 4120
    finally:
        await db.close()
    conn = sqlite3.connect(tmp_path / "wal.db")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 4500
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
