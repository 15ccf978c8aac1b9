"""The Database object: releasing memory when idle keeps every row and writes nothing; IN-list chunks;
a clean close leaves the database file whole, after the reads under way."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from pocketserver.storage.database import Database, DatabaseError, in_chunks
from pocketserver.storage.writer import Transaction


async def test_release_memory_keeps_data_and_commits_no_change(tmp_path: Path) -> None:
    db = Database(tmp_path / "test.db")
    await db.open()
    watcher = sqlite3.connect(tmp_path / "test.db")
    try:
        async def fill(tx: Transaction) -> None:
            await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            await tx.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 100) for k in range(2000)])
        before_fill = watcher.execute("PRAGMA data_version").fetchone()[0]
        await db.write(fill)
        assert len(await db.fetchall("SELECT k FROM t")) == 2000
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        assert before != before_fill      # data_version does see other connections' commits

        await db.release_memory()

        assert watcher.execute("PRAGMA data_version").fetchone()[0] == before
        assert len(await db.fetchall("SELECT k FROM t")) == 2000
        await db.write(lambda tx: tx.execute("INSERT INTO t VALUES (2000, 'y')"))
        assert (await db.fetchone("SELECT v FROM t WHERE k = 2000"))["v"] == "y"
    finally:
        watcher.close()
        await db.close()


async def test_long_in_lists_are_read_in_chunks(tmp_path: Path) -> None:
    assert list(in_chunks([])) == []
    chunks = list(in_chunks(iter(range(1001))))      # any iterable, read once
    assert [len(c) for c, _ in chunks] == [500, 500, 1]
    assert [v for c, _ in chunks for v in c] == list(range(1001))
    assert all(marks == ",".join("?" * len(c)) for c, marks in chunks)

    db = Database(tmp_path / "test.db")
    await db.open()
    try:
        async def fill(tx: Transaction) -> None:
            await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            await tx.executemany("INSERT INTO t VALUES (?)", [(k,) for k in range(0, 40000, 2)])
        await db.write(fill)
        wanted = list(range(40000))       # more than SQLite allows in one statement
        found = [r[0] for chunk, marks in in_chunks(wanted)
                 for r in await db.fetchall(f"SELECT k FROM t WHERE k IN ({marks})", chunk)]
        assert sorted(found) == list(range(0, 40000, 2))
    finally:
        await db.close()


async def test_a_clean_close_leaves_everything_in_the_database_file(tmp_path: Path) -> None:
    """The write connection closes last, so SQLite checkpoints the WAL into the file and removes it.

    Read-only connections closing last cannot: the WAL would stay behind, to be recovered at the
    next start, and a copy of the .db file alone (a backup of a stopped server) would lack it.
    """
    db = Database(tmp_path / "test.db")
    await db.open()

    async def fill(tx: Transaction) -> None:
        await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        await tx.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 100) for k in range(500)])
    await db.write(fill)
    assert len(await db.fetchall("SELECT k FROM t")) == 500     # the readers have been used
    await db.close()

    assert not (tmp_path / "test.db-wal").exists()
    copy = tmp_path / "copy.db"
    copy.write_bytes((tmp_path / "test.db").read_bytes())
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 500
    finally:
        conn.close()


async def test_close_lets_reads_under_way_finish_then_refuses_new_ones(tmp_path: Path) -> None:
    """A read under way when the server stops (its caller waiting, or gone) ends with its rows,
    not with an error from a connection closed under it; a read after close is refused."""
    db = Database(tmp_path / "test.db")
    await db.open()
    await db.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    await db.write(lambda tx: tx.execute("INSERT INTO t VALUES (7)"))
    go = asyncio.Event()
    started = 0

    async def slow(conn: aiosqlite.Connection) -> int:
        nonlocal started
        started += 1
        await go.wait()
        async with conn.execute("SELECT k FROM t") as cur:
            return (await cur.fetchone())[0]

    waiting = asyncio.create_task(db.read(slow))
    gone = asyncio.create_task(db.read(slow))
    while started < 2:
        await asyncio.sleep(0)
    gone.cancel()
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0.05)
    assert not closing.done()          # waiting for the two reads
    go.set()
    await asyncio.wait_for(closing, 5)
    assert await waiting == 7
    with pytest.raises(DatabaseError, match="closed"):
        await db.fetchone("SELECT 1")
