"""The database: one SQLite file in WAL mode, one writer connection, a pool of readers."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Sequence, TypeVar

import aiosqlite

from pocketserver.storage.checkpoint import Checkpointer
from pocketserver.storage.writer import Job, T, Transaction, Writer

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 10_000
# How long close() lets reads under way finish (each is a statement or a few); one still going
# after that fails when its connection closes, and reads that start after close() are refused.
READ_DRAIN_S = 5.0
# Values bound in one `IN (...)` list: well inside SQLite's limit on a statement's variables
# (32,766 since 3.32, 999 before), and small enough that a long list costs a few statements.
IN_LIST_SIZE = 500

V = TypeVar("V")


def in_chunks(values: Iterable[V], size: int = IN_LIST_SIZE) -> Iterable[tuple[Sequence[V], str]]:
    """`values` in chunks of `size`, each with its `?,?,...` placeholders for an `IN (...)` list."""
    items = values if isinstance(values, list) else list(values)
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        yield chunk, ",".join("?" * len(chunk))


class DatabaseError(Exception):
    """The database cannot be used (newer schema, failed migration)."""


def _migrations() -> list[tuple[int, str, str]]:
    """The numbered migration scripts shipped in the package, in order."""
    found = []
    for entry in resources.files("pocketserver.storage.migrations").iterdir():
        m = re.match(r"^(\d{4})_[\w]+\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(n for n, _, _ in _migrations())


def migrate(path: Path) -> int:
    """Apply the pending migrations on a connection of its own (the offline commands' way in).

    Returns the schema version.
    """
    with contextlib.closing(_connect_for_migrations(path)) as conn:
        return _apply_migrations(conn, path)


def _connect_for_migrations(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def _apply_migrations(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the pending migrations in one transaction; refuse a database from a newer version.

    One transaction, not one per migration: the database is never left between two of them,
    and a first start commits (and syncs) once instead of once per migration, ~5 ms sooner.
    `conn` must be in autocommit mode (isolation_level None) with foreign keys off, as
    migrations that rebuild a table need. Returns the schema version.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} has schema version {current}, but this pocketserver only knows up to "
            f"{SCHEMA_VERSION}: it was used by a newer pocketserver. Upgrade pocketserver, "
            "or restore a backup made with this version.")
    pending = [(number, name, sql) for number, name, sql in _migrations() if number > current]
    if not pending:
        return current
    name = pending[0][1]
    try:
        conn.execute("BEGIN IMMEDIATE")
        for _, name, sql in pending:
            log.info("applying migration %s", name)
            for statement in _split_statements(sql):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {pending[-1][0]}")
        conn.execute("COMMIT")
    except (sqlite3.Error, DatabaseError) as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise DatabaseError(f"migration {name} failed and was rolled back, with every "
                            f"migration pending: {exc}") from exc
    return pending[-1][0]


def _split_statements(sql: str) -> Iterable[str]:
    """Split a migration script into complete statements (sqlite3.complete_statement)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        raise DatabaseError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")


async def _connect_reader(path: Path) -> aiosqlite.Connection:
    """A read-only connection of the reader pool (statements run on its own thread)."""
    conn = await aiosqlite.connect(read_only_uri(path), uri=True, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _connect_writer(path: Path) -> sqlite3.Connection:
    """The write connection, to a migrated database: used by the writer task, which moves blocking statements to its thread.

    The migrations run on a connection of their own, closed only once this one is open: closed
    last, it would checkpoint and remove the WAL, a disk sync and two files made again (more on
    an SD card). Not on this one: its statement cache would keep the ~80 prepared statements of
    a first start's migrations, ~0.5 MiB for as long as the server runs.
    """
    with contextlib.closing(_connect_for_migrations(path)) as migrating:
        _apply_migrations(migrating, path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Reads the database, so this connection has the WAL open before the other one closes.
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged write survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")      # the Checkpointer does it beside the writer
    return conn


def _connect_lookup(path: Path) -> sqlite3.Connection:
    """A read-only connection used on the event loop's thread for single-row indexed look-ups."""
    conn = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


class Database:
    """The writer plus read-only connections over one SQLite file.

    Spec: not a spec concept; see DESIGN.md, "The write path".
    """

    def __init__(self, path: Path, *, readers: int = 2, max_batch_jobs: int = 256) -> None:
        self.path = path
        self._n_readers = readers
        self._max_batch_jobs = max_batch_jobs
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_conn: sqlite3.Connection | None = None
        self._lookup_conn: sqlite3.Connection | None = None
        self.writer: Writer | None = None
        self.checkpointer: Checkpointer | None = None
        self._reads: set[asyncio.Task[Any]] = set()     # reads under way, which close() waits for
        self._closing = False

    async def open(self) -> None:
        """Migrate, open the connections and start the writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_conn = await asyncio.to_thread(_connect_writer, self.path)
        self.writer = Writer(self._write_conn, max_batch_jobs=self._max_batch_jobs)
        self._lookup_conn = _connect_lookup(self.path)
        self.checkpointer = Checkpointer(self.path, BUSY_TIMEOUT_MS, self.writer.request_checkpoint)
        await asyncio.to_thread(self.checkpointer.open)
        self.writer.add_listener(self.checkpointer.on_commit)
        self.writer.start()
        for _ in range(self._n_readers):
            conn = await _connect_reader(self.path)
            self._all_readers.append(conn)
            self._readers.put_nowait(conn)

    async def release_memory(self) -> None:
        """Drop every connection's page cache (the server calls this when idle).

        A reader's cache is emptied anyway by its next read after any commit (WAL mode); the
        writer's next batch reads the pages it needs back from the OS cache. The writer's job
        changes nothing, so its commit writes and syncs nothing.
        """
        async def shrink(conn: aiosqlite.Connection) -> None:
            await conn.execute("PRAGMA shrink_memory")

        async def shrink_writer(tx: Transaction) -> None:
            await tx.execute("PRAGMA shrink_memory")
        for _ in range(len(self._all_readers)):
            await self.read(shrink)
        if self._lookup_conn is not None:
            self._lookup_conn.execute("PRAGMA shrink_memory")
        await self.write(shrink_writer)

    async def close(self) -> None:
        """Drain the writer, then close every connection, the write connection last.

        The last connection to close checkpoints the WAL into the database file and removes it,
        if it may write: so after a clean stop the .db file alone holds everything, and the next
        start has no WAL to recover.
        """
        if self.writer is not None:
            await self.writer.stop()
        if self.checkpointer is not None:
            await self.checkpointer.close()
            self.checkpointer = None
        # Reads still under way (a request or task stopped while it waited for one) finish
        # first: closed under them, they would end in errors nobody is left to see.
        self._closing = True
        if self._reads:
            await asyncio.wait(self._reads, timeout=READ_DRAIN_S)
        for conn in self._all_readers:
            await conn.close()
        self._all_readers.clear()
        if self._lookup_conn is not None:
            self._lookup_conn.close()
            self._lookup_conn = None
        if self.writer is not None:
            await self.writer.close()
            self._write_conn = None

    async def write(self, job: Job[T], *, size: int = 0) -> T:
        """Run `job` in the writer's next batch; returns once it is durably committed."""
        assert self.writer is not None, "database is not open"
        return await self.writer.submit(job, size=size)

    async def write_along(self, job: Job[T], *, within: float) -> T:
        """Run `job` in the next batch that commits anyway, or in one of its own after `within` s.

        For writes nobody waits for (an index, times kept in memory): they share a disk sync
        that other writes pay for, instead of paying for one. Once queued, the job runs even if
        the caller is cancelled meanwhile (at shutdown, the writer's last batch takes it): its
        data has been handed over.
        """
        assert self.writer is not None, "database is not open"
        return await asyncio.shield(self.writer.enqueue_rider(job, within=within))

    def enqueue(self, job: Job[T], *, size: int = 0) -> "asyncio.Future[T]":
        """Queue `job` in FIFO order without waiting; the future resolves after its commit."""
        assert self.writer is not None, "database is not open"
        return self.writer.enqueue(job, size=size)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """Borrow a read-only connection (sees every committed write).

        The body must not be cancelled half-way through a statement (see `read`); prefer `read`,
        `fetchone` and `fetchall`, which are safe.
        """
        conn = await self._readers.get()
        try:
            yield conn
        finally:
            self._readers.put_nowait(conn)

    async def read(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `fn` on a read-only connection, to completion even if the caller is cancelled.

        A read cancelled between executing a statement and closing its cursor would leave the
        connection inside a read transaction, seeing an old snapshot for good; so the read runs
        in a shielded task and the caller merely stops waiting for it.
        """
        if self._closing:
            raise DatabaseError("the database is closed")

        async def run() -> T:
            async with self.reader() as conn:
                return await fn(conn)
        task = asyncio.ensure_future(run())
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)
        return await asyncio.shield(task)

    def lookup(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """One row by primary key or unique index, read right here on the event loop's thread.

        Only for look-ups that touch a handful of cached pages (an access token, a transaction
        ID, a device's key counts): far cheaper than a trip to a reader thread. The statement is
        finished before returning, so the connection never holds an old snapshot.
        """
        rows = self.lookup_all(sql, params)
        return rows[0] if rows else None

    def lookup_all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """The rows of a short index range (a user's pushers, a user's rooms), read like `lookup`."""
        assert self._lookup_conn is not None, "database is not open"
        cursor = self._lookup_conn.execute(sql, tuple(params))
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async def one(conn: aiosqlite.Connection) -> aiosqlite.Row | None:
            async with conn.execute(sql, tuple(params)) as cur:
                return await cur.fetchone()
        return await self.read(one)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async def rows(conn: aiosqlite.Connection) -> list[aiosqlite.Row]:
            # One trip to the connection's thread (execute, fetch all, finish), not three: under
            # load each trip waits for a turn of the busy event loop while holding the reader.
            return list(await conn.execute_fetchall(sql, tuple(params)))
        return await self.read(rows)


def read_only_uri(path: Path) -> str:
    """A `file:` URI opening `path` read-only; a `#` or `?` in the path is escaped (unescaped, SQLite
    reads it as the URI's fragment or query and opens another file)."""
    return f"{Path(path).resolve().as_uri()}?mode=ro"


def backup(source: Path, destination: Path) -> None:
    """Copy the live database consistently with SQLite's online backup API.

    In one step, within one read transaction: a copy made in slices starts over whenever the
    server commits, so under steady writes a large database was never done (measured: 680 MB at
    ~8 writes a second, unfinished after 50 s). In WAL mode the read holds up no writer. The copy
    is written beside the destination and renamed into place once whole, so a failed one leaves
    nothing that blocks the next try.
    """
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    if not destination.parent.is_dir():
        raise FileNotFoundError(f"no directory {destination.parent} to write the backup into")
    partial = destination.with_name(destination.name + ".partial")
    src = sqlite3.connect(read_only_uri(source), uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
        partial.rename(destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
