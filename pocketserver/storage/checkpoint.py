"""WAL checkpoints beside the writer, not inside its commits.

SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past its threshold, so
every hundredth batch or so also waited for every changed page to be copied back into the
database file and for two more disk syncs. Here the write connection never checkpoints (its
`wal_autocheckpoint` is 0); a connection of our own runs a PASSIVE checkpoint on its own thread
about every TARGET_FRAMES frames, while new batches keep committing to the WAL. The frames those
batches added are then copied by the writer before its next batch (`Writer.request_checkpoint`),
a short step that lets the WAL start over from its beginning.

Spec: not a spec concept; SQLite, "Write-Ahead Logging" (checkpointing).
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)
TARGET_FRAMES = 1000          # SQLite's default automatic checkpoint threshold, in pages
MIN_INTERVAL, MAX_INTERVAL = 8, 4096


class Checkpointer:
    """Runs a PASSIVE checkpoint every `interval` commits, the interval tuned to ~TARGET_FRAMES frames.

    The commit count stands in for the WAL's size (Python's sqlite3 has no WAL hook): each
    checkpoint reports how many frames the WAL held, and the next interval is scaled from it.
    """

    def __init__(self, path: Path, busy_timeout_ms: int, request_tail: Callable[[], None]) -> None:
        self._path = path
        self._request_tail = request_tail
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
        self._running: asyncio.Future[tuple[int, int, int]] | None = None
        self.interval = 64
        self._commits = 0
        self.checkpoints = 0

    def open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA synchronous = FULL")
        self._conn = conn

    def on_commit(self, _changes: object) -> None:
        """Writer listener: count the commit, and start a checkpoint when the interval is reached."""
        self._commits += 1
        if self._commits < self.interval or self._running is not None or self._conn is None:
            return
        commits, self._commits = self._commits, 0
        running = asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
        self._running = running
        running.add_done_callback(lambda done: self._finished(done, commits))

    def _checkpoint(self) -> tuple[int, int, int]:
        assert self._conn is not None
        cursor = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return int(row[0]), int(row[1]), int(row[2])

    def _finished(self, done: asyncio.Future[tuple[int, int, int]], commits: int) -> None:
        self._running = None
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:      # e.g. disk full: the WAL just grows until a later one succeeds
            log.warning("WAL checkpoint failed: %s", exc)
            return
        self.checkpoints += 1
        _, frames, _ = done.result()
        # Batches that began while it ran wrote frames it did not copy: the writer copies them.
        self._request_tail()
        per_commit = max(frames, 1) / commits
        # At most twice as long a step each time: commits made while the last checkpoint ran are
        # counted here though the writer's copy then emptied the WAL of their frames, so under load
        # one estimate of frames per commit can be far too low (seen: the interval thrown to its
        # maximum, ~12k frames between checkpoints, on a busy 2-core machine).
        self.interval = max(MIN_INTERVAL, min(MAX_INTERVAL, 2 * self.interval, int(TARGET_FRAMES / per_commit)))

    async def close(self) -> None:
        """Wait for a running checkpoint, then close (the write connection, closed last, checkpoints once more)."""
        if self._running is not None:
            try:
                await self._running
            except Exception:
                pass
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)
