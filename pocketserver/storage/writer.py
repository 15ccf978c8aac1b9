"""The single writer: every write job runs here, batched into one transaction per commit.

Jobs queued while a commit is in flight form the next batch, so one disk sync is shared by
every request that arrived meanwhile. Each job runs in its own SAVEPOINT, so a failing job is
rolled back alone. Waiters are resolved only after COMMIT returns (synchronous=FULL in WAL
mode makes that commit durable), and listeners hear about changes only after that. A job that
needs no sync of its own can ride along in the next batch instead (`enqueue_rider`).

The statements of a job run directly on the event loop's thread: inside the write transaction
they touch cached pages and take microseconds, far less than a hop to a database thread and
back. What can block (BEGIN IMMEDIATE waiting for another process's lock, COMMIT with its disk
sync and checkpoint, ROLLBACK) runs on the writer's own thread; BEGIN IMMEDIATE is first tried
on the loop's thread without waiting, and moves there only when the lock is taken.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
# Group commit: while requests that announced a write (`Writer.expect`) before a batch opened are
# still being handled, the writer holds the batch open this long at most, so they share its sync;
# and under steady load it waits for the batch to reach its recent size: for as long as the jobs
# it lacks usually take to arrive, within these bounds.
GROUP_COMMIT_WAIT_S = 0.008
BATCH_FILL_WAIT_S = (0.003, 0.015)
BATCH_HISTORY_S = 0.05           # recent batch sizes older than a pause this long are forgotten
YIELD_EVERY_JOBS = 8             # a batch lets the event loop run other tasks after this many jobs
# Every waiter of a batch also waits for the riders' work, so riders prefer a batch with few jobs
# (a lone message, a read receipt): a bigger one, which means requests are arriving together,
# they let go by this many times before they join one anyway.
RIDERS_JOIN_BATCHES_UP_TO = 2
RIDERS_PASS_BIG_BATCHES = 8


@dataclass(slots=True)
class Changes:
    """What a batch changed, for the notifier: rooms, users and streams touched."""

    rooms: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    streams: dict[str, int] = field(default_factory=dict)

    def merge(self, other: "Changes") -> None:
        self.rooms |= other.rooms
        self.users |= other.users
        for name, pos in other.streams.items():
            self.streams[name] = max(pos, self.streams.get(name, 0))


class Result:
    """A statement run to completion: its rows (for RETURNING and SELECT), rowcount and lastrowid."""

    __slots__ = ("rowcount", "lastrowid", "_rows")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        try:
            self._rows = cursor.fetchall()
            self.rowcount = cursor.rowcount
            self.lastrowid = cursor.lastrowid
        finally:
            cursor.close()

    async def fetchone(self) -> sqlite3.Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[sqlite3.Row]:
        return self._rows


class Transaction:
    """The handle a write job receives: statements on the write connection, plus its changes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.changes = Changes()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> Result:
        return Result(self._conn.execute(sql, tuple(params)))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        cursor = self._conn.execute(sql, tuple(params))
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        cursor = self._conn.execute(sql, tuple(params))
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    async def next_stream_position(self, stream: str) -> int:
        """Allocate the next position of `stream` inside this transaction."""
        row = await self.fetchone(_NEXT_POSITION, (stream,))
        assert row is not None
        self.changes.streams[stream] = max(row[0], self.changes.streams.get(stream, 0))
        return int(row[0])


_NEXT_POSITION = """
INSERT INTO stream_positions (stream, position) VALUES (?, 1)
ON CONFLICT (stream) DO UPDATE SET position = position + 1
RETURNING position
"""

Job = Callable[[Transaction], Awaitable[T]]
Listener = Callable[[Changes], None]


@dataclass(slots=True, eq=False)     # hashed by identity: riders are keys of a dict
class _Pending:
    job: Job[Any]
    future: asyncio.Future[Any]
    size: int


@dataclass(slots=True)
class WriterStats:
    """Counters the metrics endpoint and the benchmark read."""

    commits: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    failed_commits: int = 0
    largest_batch: int = 0
    commit_seconds: float = 0.0


class _Stop:
    pass


class Writer:
    """Owns the only write connection and commits queued jobs in groups.

    Spec: not a spec concept; see DESIGN.md, "The write path: one writer, group commit".
    """

    def __init__(self, conn: sqlite3.Connection, *, max_batch_jobs: int = 256,
                 max_batch_bytes: int = 8 * 1024 * 1024) -> None:
        self._conn = conn
        self._busy_timeout_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="writer")
        self._announced: dict[int, asyncio.Task | None] = {}   # outstanding `expect` numbers, oldest first
        self._next_announcement = 0
        self._horizon = 0                         # the open batch waits for announcements below this
        self._caught_up: asyncio.Future[None] | None = None
        self._arrived = asyncio.Event()
        self._checkpoint_tail = False
        self._last_arrival = time.monotonic()
        self._last_batch_at = 0.0                  # when the last batch was committed
        self._arrival_gap = 0.0                    # moving average of the time between jobs
        self._recent_batches: collections.deque[int] = collections.deque(maxlen=16)
        self._queue: asyncio.Queue[_Pending | _Stop] = asyncio.Queue()
        self._max_jobs = max_batch_jobs
        self._max_bytes = max_batch_bytes
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self._riders: dict[_Pending, asyncio.TimerHandle] = {}   # queued jobs waiting for a batch to join
        self._big_batches_passed = 0              # by the riders waiting now
        self.stats = WriterStats()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with each batch's changes after its commit."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="writer")

    async def stop(self) -> None:
        """Commit everything already queued, then stop the writer task."""
        if self._task is None:
            return
        self._queue.put_nowait(_Stop())
        await self._task
        self._task = None

    async def close(self) -> None:
        """Stop, then close the write connection on the writer's thread."""
        await self.stop()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.close)
        self._thread.shutdown(wait=True)

    @contextlib.contextmanager
    def expect(self) -> Iterator[None]:
        """Announce that the calling task is about to queue a job (a request on its way to a write).

        A batch waits (up to GROUP_COMMIT_WAIT_S) for the jobs announced before it opened, so
        concurrent requests share one disk sync instead of each paying for its own. Requests
        announced later don't hold it open: under steady load it would never close. The
        announcement ends when the task queues its job or leaves the block, whichever is first,
        so a block may span the wait for the commit.
        """
        number = self._next_announcement
        self._next_announcement += 1
        self._announced[number] = asyncio.current_task()
        try:
            yield
        finally:
            self._withdraw(number)

    def _withdraw(self, number: int) -> None:
        if self._announced.pop(number, self) is self:
            return                                   # ended already, when its job was queued
        waiter = self._caught_up
        if waiter is not None and not waiter.done() and self._oldest_announcement() >= self._horizon:
            waiter.set_result(None)

    def _oldest_announcement(self) -> int:
        return next(iter(self._announced), self._next_announcement)

    async def _wait_for_announced(self) -> None:
        self._horizon = self._next_announcement
        self._caught_up = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._caught_up, GROUP_COMMIT_WAIT_S)
        except asyncio.TimeoutError:
            pass
        finally:
            self._caught_up = None

    def request_checkpoint(self) -> None:
        """Before the next batch, checkpoint the WAL frames a background checkpoint left behind.

        A checkpoint beside the writer copies the frames that existed when it began; under steady
        writes a batch is always under way when it ends, so the WAL would never be fully copied
        at the start of a batch and could never start over from its beginning. The few frames
        committed meanwhile are copied here, before a batch begins.
        """
        self._checkpoint_tail = True

    def _begin_at_once(self) -> bool:
        """BEGIN IMMEDIATE on the event loop's thread if the write lock is free right now.

        It nearly always is: this process is the only writer, and another (`pocketserver user`,
        a backup) holds the lock only briefly. Taking a free lock touches shared memory, not the
        disk, and saves the batch a trip to the writer's thread and back, which on an idle
        machine costs two thread wake-ups before the batch can start. When the lock is taken
        (or anything else goes wrong), the caller waits for it on the writer's thread as before.
        """
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0").fetchall()     # (fetched: the PRAGMA answers a row)
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.Error:
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}").fetchall()

    async def _blocking(self, sql: str) -> None:
        """Run a statement that may wait on the disk or a lock on the writer's thread.

        Its rows (a checkpoint answers one) are read to the end there, so the statement is
        finished before the next one starts: a statement left open blocks SAVEPOINT.
        """
        await asyncio.get_running_loop().run_in_executor(self._thread, self._run_to_end, sql)

    def _run_to_end(self, sql: str) -> None:
        self._conn.execute(sql).fetchall()

    async def submit(self, job: Job[T], *, size: int = 0) -> T:
        """Queue `job`, wait for the commit that holds it, and return its result."""
        return await self.enqueue(job, size=size)

    def enqueue(self, job: Job[T], *, size: int = 0) -> asyncio.Future[T]:
        """Queue `job` now and return the future its commit resolves.

        Jobs run in the order they were queued, so a caller may queue a job that depends on an
        earlier one before that one is committed.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future, size))
        self._arrived.set()
        if self._announced:
            task = asyncio.current_task()
            for number in [n for n, owner in self._announced.items() if owner is task]:
                self._withdraw(number)
        now = time.monotonic()
        gap = min(now - self._last_arrival, 0.05)      # an idle spell is not the usual pace
        self._last_arrival = now
        self._arrival_gap += (gap - self._arrival_gap) / 16
        return future

    def enqueue_rider(self, job: Job[T], *, within: float) -> asyncio.Future[T]:
        """Queue `job` to run in the next batch that commits anyway, or in its own after `within` s.

        For writes that need no disk sync of their own (an index, times kept in memory): while
        other requests write, they share a commit that happens regardless. A rider runs after the
        other jobs of the batch it joins, so it must not depend on the order of jobs.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        pending = _Pending(job, future, 0)
        self._riders[pending] = asyncio.get_running_loop().call_later(within, self._board, pending)
        return future

    def _board(self, pending: _Pending) -> None:
        """A rider's wait is over: queue it as an ordinary job, which starts a batch if none is due."""
        if self._riders.pop(pending, None) is not None:
            if not self._riders:
                self._big_batches_passed = 0
            self._queue.put_nowait(pending)
            self._arrived.set()

    def _riders_join(self, jobs: int) -> bool:
        """Whether the waiting riders join a batch of `jobs` jobs that changed something.

        A rider's work (an index round over the last second's messages) delays every waiter of
        the batch it joins. After a quiet spell, the first batch of a burst of requests would
        carry it; a few batches later, or a small batch, costs fewer waiters less.
        """
        if jobs <= RIDERS_JOIN_BATCHES_UP_TO or self._big_batches_passed >= RIDERS_PASS_BIG_BATCHES:
            return True
        self._big_batches_passed += 1
        return False

    def _take_riders(self) -> list[_Pending]:
        riders = list(self._riders)
        self._big_batches_passed = 0
        for handle in self._riders.values():
            handle.cancel()
        self._riders.clear()
        return riders

    async def _wait_for_usual_batch(self) -> None:
        """Under steady concurrent load, hold the batch open (briefly) until it is as big as lately.

        Requests that are not yet on the event loop can't announce themselves; the recent batch
        sizes say how many writers there usually are. Once the wait times out short of that, the
        estimate starts again from what arrived, so a burst costs at most one wait when it ends.
        """
        if time.monotonic() - self._last_batch_at > BATCH_HISTORY_S:
            self._recent_batches.clear()       # after a pause the load may be another one
        target = max(self._recent_batches, default=1)
        lacking = target - 1 - self._queue.qsize()
        if lacking <= 0:
            return
        low, high = BATCH_FILL_WAIT_S
        deadline = time.monotonic() + min(high, max(low, 1.5 * lacking * self._arrival_gap))
        while self._queue.qsize() + 1 < target:
            remaining = deadline - time.monotonic()
            self._arrived.clear()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                self._recent_batches.clear()
                return

    async def run(self) -> None:
        stopping = False
        while not stopping:
            first = self._carry or await self._queue.get()
            self._carry = None
            if isinstance(first, _Stop):
                break
            # One turn of the event loop: requests already running up to their submit join this
            # batch; and while others have announced a job, wait (briefly) for them too.
            await asyncio.sleep(0)
            if self._announced:
                await self._wait_for_announced()
            await self._wait_for_usual_batch()
            batch, size = [first], first.size
            while not self._queue.empty() and len(batch) < self._max_jobs:
                item = self._queue.get_nowait()
                if isinstance(item, _Stop):
                    stopping = True
                    break
                if size + item.size > self._max_bytes:
                    self._carry = item
                    break
                batch.append(item)
                size += item.size
            await self._commit(batch, take_riders=True)
        # Drain whatever was queued behind the stop request.
        rest = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Pending):
                rest.append(item)
        if self._carry:
            rest.insert(0, self._carry)
        rest += self._take_riders()
        for i in range(0, len(rest), self._max_jobs):
            await self._commit(rest[i : i + self._max_jobs])

    async def _commit(self, batch: list[_Pending], *, take_riders: bool = False) -> None:
        """Run `batch` in one transaction and commit it. With `take_riders`, the riders go in
        too when the batch changed something: a batch that changed nothing syncs nothing, and a
        rider would make it sync for the rider alone, so they wait on."""
        started = time.perf_counter()
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        changes = Changes()
        everyone = batch
        try:
            if self._checkpoint_tail:
                self._checkpoint_tail = False
                await self._blocking("PRAGMA wal_checkpoint(PASSIVE)")
            if not self._begin_at_once():
                await self._blocking("BEGIN IMMEDIATE")
            changed_before = self._conn.total_changes
            await self._run_jobs(batch, outcomes, changes)
            if take_riders and self._riders and self._conn.total_changes != changed_before \
                    and self._riders_join(len(batch)):
                riders = self._take_riders()
                everyone = batch + riders
                await self._run_jobs(riders, outcomes, changes)
            await self._blocking("COMMIT")
        except Exception as exc:  # BEGIN or COMMIT failed (disk full, I/O error): nothing landed
            log.error("write batch of %d jobs failed: %s", len(everyone), exc)
            self.stats.failed_commits += 1
            if self._conn.in_transaction:
                try:
                    await self._blocking("ROLLBACK")
                except Exception:
                    log.exception("rollback after failed commit failed")
            for p in everyone:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.stats.commits += 1
        self.stats.jobs += len(outcomes)
        self.stats.largest_batch = max(self.stats.largest_batch, len(outcomes))
        self._recent_batches.append(len(batch))       # the usual size of a batch, riders aside
        self._last_batch_at = time.monotonic()
        self.stats.commit_seconds += time.perf_counter() - started
        for p, value, exc in outcomes:
            if p.future.done():
                continue
            if exc is None:
                p.future.set_result(value)
            else:
                self.stats.failed_jobs += 1
                p.future.set_exception(exc)
        for listener in self._listeners:
            try:
                listener(changes)
            except Exception:
                log.exception("writer listener failed")

    async def _run_jobs(self, jobs: list[_Pending], outcomes: list[tuple[_Pending, Any, BaseException | None]],
                        changes: Changes) -> None:
        """Run each job in a savepoint of its own, in the open transaction, noting its outcome."""
        for index, p in enumerate(jobs):
            if p.future.cancelled():
                continue
            if index and index % YIELD_EVERY_JOBS == 0:
                # A job's statements don't yield; every few jobs let other requests (woken
                # long-polls above all) have the loop, or a big batch would hold it for long.
                await asyncio.sleep(0)
            tx = Transaction(self._conn)
            self._conn.execute("SAVEPOINT job")
            try:
                value = await p.job(tx)
                self._conn.execute("RELEASE job")
                outcomes.append((p, value, None))
                changes.merge(tx.changes)
            except Exception as exc:  # one bad job must not sink the batch
                if not self._conn.in_transaction:
                    # SQLite rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR):
                    # the batch is lost, and its waiters must hear the real cause.
                    raise
                self._conn.execute("ROLLBACK TO job")
                self._conn.execute("RELEASE job")
                outcomes.append((p, None, exc))
