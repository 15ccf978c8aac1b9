"""The group-commit writer: batching, savepoint isolation, ordering, durability."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pocketserver.storage.database import Database
from pocketserver.storage import writer
from pocketserver.storage.writer import Changes, Transaction


async def open_database(path: Path) -> Database:
    """An open database with the test table `t` (the caller closes it)."""
    database = Database(path)
    await database.open()
    await database.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    return database


def stored_keys(path: Path) -> list[int]:
    """The keys in table `t` of a closed database file."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT k FROM t ORDER BY k")]
    finally:
        conn.close()


@pytest.fixture
async def db(tmp_path: Path):
    database = await open_database(tmp_path / "test.db")
    yield database
    await database.close()


def insert(k: int, v: str = "x"):
    async def job(tx: Transaction) -> int:
        await tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        return k
    return job


async def test_concurrent_writers_share_commits(db: Database) -> None:
    before = db.writer.stats.commits
    n = 200
    results = await asyncio.gather(*(db.write(insert(i)) for i in range(n)))
    assert results == list(range(n))
    commits = db.writer.stats.commits - before
    assert 1 <= commits <= n // 10, f"{commits} commits for {n} concurrent jobs"
    rows = await db.fetchall("SELECT COUNT(*) FROM t")
    assert rows[0][0] == n


async def test_failing_job_does_not_fail_batch_mates(db: Database) -> None:
    async def bad(tx: Transaction) -> None:
        await tx.execute("INSERT INTO t (k, v) VALUES (1000, 'half')")
        raise ValueError("boom")

    outcomes = await asyncio.gather(db.write(insert(1)), db.write(bad), db.write(insert(2)),
                                    db.write(insert(1)),  # duplicate key: fails alone
                                    return_exceptions=True)
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    rows = await db.fetchall("SELECT k, v FROM t ORDER BY k")
    assert [tuple(r) for r in rows] == [(1, "x"), (2, "x")]   # the bad job's half write is gone
    assert db.writer.stats.failed_jobs == 2


async def test_waiters_resolved_only_after_commit(db: Database) -> None:
    """Each waiter, when it wakes, already sees its row from another (read-only) connection."""
    async def write_then_read(k: int) -> bool:
        await db.write(insert(k))
        row = await db.fetchone("SELECT v FROM t WHERE k = ?", (k,))
        return row is not None

    assert all(await asyncio.gather(*(write_then_read(k) for k in range(50))))


async def test_listener_fires_after_commit_with_changes(db: Database) -> None:
    seen: list[tuple[Changes, int]] = []

    def listener(changes: Changes) -> None:
        # Runs in the writer after COMMIT: a fresh connection must see the row already.
        conn = sqlite3.connect(db.path)
        count = conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
        conn.close()
        seen.append((changes, count))

    db.writer.add_listener(listener)

    async def job(tx: Transaction) -> int:
        await tx.execute("INSERT INTO t (k, v) VALUES (7, 'y')")
        tx.changes.rooms.add("!room")
        return await tx.next_stream_position("events")

    pos = await db.write(job)
    assert seen and seen[-1][1] == 1
    assert "!room" in seen[-1][0].rooms and seen[-1][0].streams["events"] == pos


async def test_listener_not_called_for_failed_commit_changes(db: Database) -> None:
    seen: list[Changes] = []
    db.writer.add_listener(seen.append)

    async def bad(tx: Transaction) -> None:
        tx.changes.rooms.add("!nope")
        raise RuntimeError("fails")

    with pytest.raises(RuntimeError):
        await db.write(bad)
    assert all("!nope" not in c.rooms for c in seen)


async def test_stream_positions_only_increase(db: Database) -> None:
    async def alloc(tx: Transaction) -> int:
        return await tx.next_stream_position("account_data")

    positions = await asyncio.gather(*(db.write(alloc) for _ in range(100)))
    assert sorted(positions) == positions
    assert len(set(positions)) == 100


async def test_batch_is_capped(tmp_path: Path) -> None:
    database = Database(tmp_path / "cap.db", max_batch_jobs=10)
    await database.open()
    try:
        await database.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        await asyncio.gather(*(database.write(insert(i)) for i in range(100)))
        assert database.writer.stats.largest_batch <= 10
        assert database.writer.stats.commits >= 10
    finally:
        await database.close()


async def test_stop_drains_queued_jobs(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "drain.db")
    pending = [asyncio.ensure_future(database.write(insert(i))) for i in range(20)]
    await asyncio.sleep(0)
    await database.close()
    assert [await p for p in pending] == list(range(20))
    assert stored_keys(tmp_path / "drain.db") == list(range(20))


def test_sigkill_after_acknowledgement_loses_nothing(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after acknowledging writes keeps every one of them."""
    path = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from pocketserver.storage.database import Database

        async def main():
            db = Database(Path({str(path)!r}))
            await db.open()
            await db.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
            print("ready", flush=True)
            async def one(k):
                await db.write(lambda tx: tx.execute("INSERT INTO t (k) VALUES (?)", (k,)))
                sys.stdout.write(f"ack {{k}}\\n"); sys.stdout.flush()
            k = 0
            while True:
                await asyncio.gather(*(one(k + i) for i in range(8)))
                k += 8
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    acked: set[int] = set()
    assert proc.stdout.readline().strip() == "ready"
    for line in proc.stdout:
        acked.add(int(line.split()[1]))
        if len(acked) >= 300:
            os.kill(proc.pid, signal.SIGKILL)
            break
    # Acknowledgements already written to the pipe before the kill count too.
    for line in proc.stdout:
        acked.add(int(line.split()[1]))
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    stored = {row[0] for row in conn.execute("SELECT k FROM t")}
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert acked <= stored, f"lost acknowledged writes: {sorted(acked - stored)[:10]}"


async def test_cancelled_reads_leave_no_stale_snapshot(tmp_path: Path) -> None:
    """A request cancelled mid-read (client gone) must not pin its connection to an old snapshot."""
    database = Database(tmp_path / "cancel.db", readers=1)
    await database.open()
    try:
        await database.write(lambda tx: tx.execute("CREATE TABLE t (k INTEGER)"))
        await database.write(lambda tx: tx.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20000)]))
        for i in range(30):
            task = asyncio.create_task(database.fetchall("SELECT k FROM t"))
            for _ in range(i % 4):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await database.write(lambda tx, i=i: tx.execute("INSERT INTO t VALUES (?)", (-1 - i,)))
            row = await database.fetchone("SELECT COUNT(*) FROM t WHERE k = ?", (-1 - i,))
            assert row[0] == 1, f"round {i}: the reader still sees an old snapshot"
    finally:
        await database.close()


async def test_batch_waits_for_an_announced_job(db: Database) -> None:
    """A request that announced its write (Writer.expect) before the batch opened joins that batch."""
    before = db.writer.stats.commits

    async def slow_request() -> int:
        with db.writer.expect():
            await asyncio.sleep(0.002)          # e.g. still reading its body when the batch opens
            future = db.enqueue(insert(2))
        return await future

    announced = asyncio.ensure_future(slow_request())
    await asyncio.sleep(0)                      # the announcement happens before the first job
    assert await asyncio.gather(db.write(insert(1)), announced) == [1, 2]
    assert db.writer.stats.commits - before == 1


async def test_announced_job_that_never_comes_delays_a_batch_only_briefly(db: Database) -> None:
    from pocketserver.storage.writer import GROUP_COMMIT_WAIT_S
    with db.writer.expect():
        started = asyncio.get_running_loop().time()
        await db.write(insert(1))
        waited = asyncio.get_running_loop().time() - started
    assert waited < GROUP_COMMIT_WAIT_S + 0.5


async def test_announcement_ends_when_its_job_is_queued(db: Database) -> None:
    """A request may announce for its whole handling, commit wait included: once its job is
    queued it holds no batch open, so a later batch (its own included) doesn't wait for it."""
    from pocketserver.storage.writer import GROUP_COMMIT_WAIT_S

    async def request(k: int) -> int:
        with db.writer.expect():
            await asyncio.sleep(0)
            return await db.write(insert(k))    # the block spans the commit

    started = asyncio.get_running_loop().time()
    assert await asyncio.gather(request(1), request(2), request(3)) == [1, 2, 3]
    assert asyncio.get_running_loop().time() - started < GROUP_COMMIT_WAIT_S
    assert not db.writer._announced


async def test_under_steady_load_a_batch_fills_to_its_recent_size(db: Database) -> None:
    """After a batch of 4, the next one waits briefly for 4 jobs; short of them it gives up once."""
    await asyncio.gather(*(db.write(insert(i)) for i in range(4)))
    before = db.writer.stats.commits

    async def late(k: int) -> int:
        await asyncio.sleep(0.0005 * k)         # arrives after the batch opened, within the wait
        return await db.write(insert(k))

    assert await asyncio.gather(*(late(k) for k in range(10, 14))) == [10, 11, 12, 13]
    assert db.writer.stats.commits - before == 1
    # Load drops to one writer: the first lone job waits once, then the estimate starts again.
    await db.write(insert(20))
    assert max(db.writer._recent_batches) == 1


async def test_lookup_reads_committed_rows_on_the_loop_thread(db: Database) -> None:
    assert db.lookup("SELECT v FROM t WHERE k = ?", (5,)) is None
    await db.write(insert(5, "five"))
    assert db.lookup("SELECT v FROM t WHERE k = ?", (5,))[0] == "five"
    await db.write(lambda tx: tx.execute("UPDATE t SET v = 'cinq' WHERE k = 5"))
    assert db.lookup("SELECT v FROM t WHERE k = ?", (5,))[0] == "cinq"   # no stale snapshot is kept
    assert [r[0] for r in db.lookup_all("SELECT k FROM t ORDER BY k")] == [5]


async def test_a_rider_joins_the_next_batch_instead_of_committing_alone(db: Database) -> None:
    commits = db.writer.stats.commits
    rider = asyncio.ensure_future(db.write_along(insert(1), within=60))
    await asyncio.sleep(0.05)
    assert not rider.done() and db.writer.stats.commits == commits     # it waits for company
    assert await db.write(insert(2)) == 2
    assert await asyncio.wait_for(rider, 1) == 1
    assert db.writer.stats.commits == commits + 1                       # both in one commit
    assert [tuple(r) for r in await db.fetchall("SELECT k FROM t ORDER BY k")] == [(1,), (2,)]


async def test_a_rider_commits_alone_once_its_wait_is_over(db: Database) -> None:
    commits = db.writer.stats.commits
    assert await asyncio.wait_for(db.write_along(insert(1), within=0.05), 2) == 1
    assert db.writer.stats.commits == commits + 1
    assert [tuple(r) for r in await db.fetchall("SELECT k FROM t")] == [(1,)]


async def test_a_failing_rider_fails_alone(db: Database) -> None:
    rider = asyncio.ensure_future(db.write_along(insert(1), within=60))
    await asyncio.sleep(0)
    outcomes = await asyncio.gather(db.write(insert(1)), rider, return_exceptions=True)
    assert outcomes[0] == 1 and isinstance(outcomes[1], sqlite3.IntegrityError)   # it runs after


async def test_stop_commits_the_waiting_riders(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "riders.db")
    rider = asyncio.ensure_future(database.write_along(insert(7), within=3600))
    await asyncio.sleep(0)
    await database.close()
    assert await rider == 7
    assert stored_keys(tmp_path / "riders.db") == [7]


async def test_a_rider_still_runs_when_its_caller_is_cancelled(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "cancelled.db")
    caller = asyncio.ensure_future(database.write_along(insert(5), within=3600))
    await asyncio.sleep(0)
    caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    await database.close()                 # the last batch takes the rider
    assert stored_keys(tmp_path / "cancelled.db") == [5]


async def test_a_rider_does_not_make_a_batch_that_changed_nothing_sync(db: Database) -> None:
    """A batch that changed nothing writes and syncs nothing; riders wait for one that does."""
    rider = asyncio.ensure_future(db.write_along(insert(1), within=60))
    await asyncio.sleep(0)
    await db.write(lambda tx: tx.execute("DELETE FROM t WHERE k = 99"))      # changes no row
    await asyncio.sleep(0.05)
    assert not rider.done()
    await db.write(insert(2))
    assert await asyncio.wait_for(rider, 1) == 1


async def test_a_rider_lets_big_batches_go_by_a_few_times(db: Database) -> None:
    """Every waiter of a batch waits for its riders too: they join a batch of one or two jobs at
    once, and a bigger one (requests arriving together) only after letting a few go by."""
    rider = asyncio.ensure_future(db.write_along(insert(1000), within=60))
    await asyncio.sleep(0)
    key = 0
    for _ in range(writer.RIDERS_PASS_BIG_BATCHES):
        keys = range(key, key + writer.RIDERS_JOIN_BATCHES_UP_TO + 1)
        key += len(keys)
        assert await asyncio.gather(*(db.writer.enqueue(insert(k)) for k in keys)) == list(keys)
        assert not rider.done()
    commits = db.writer.stats.commits
    await asyncio.gather(*(db.writer.enqueue(insert(k)) for k in range(key, key + 3)))
    assert await asyncio.wait_for(rider, 1) == 1000 and db.writer.stats.commits == commits + 1

    rider = asyncio.ensure_future(db.write_along(insert(2000), within=60))
    await asyncio.sleep(0)
    await db.write(insert(2001))                 # a lone job: the rider joins it at once
    assert await asyncio.wait_for(rider, 1) == 2000


async def test_a_batch_waits_off_the_loop_for_a_write_lock_another_process_holds(tmp_path: Path) -> None:
    """The writer first takes the write lock on the loop's thread without waiting; when another
    connection holds it, the batch waits on the writer's thread and commits once it is free."""
    database = await open_database(tmp_path / "test.db")
    try:
        other = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(database.write(lambda tx: tx.execute("INSERT INTO t (k, v) VALUES (1, 'a')")))
        ticks = 0
        for _ in range(10):                  # the event loop keeps running while the batch waits
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 10 and not write.done()
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(write, 5)
        await database.write(lambda tx: tx.execute("INSERT INTO t (k, v) VALUES (2, 'b')"))
        assert database.writer._conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    finally:
        await database.close()
    assert stored_keys(tmp_path / "test.db") == [1, 2]
