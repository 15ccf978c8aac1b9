"""Keeps the full-text index up to date, off the request path.

New events are indexed by a background task woken after commits, in one write job per round, so
a message send writes no index pages itself and many messages share one index segment.
"""
from __future__ import annotations

import asyncio
import logging

from pocketserver.storage import search as search_store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Changes

log = logging.getLogger(__name__)
# Wait this long after a wake before indexing, so a burst of messages is indexed together.
GATHER_SECONDS = 1.0


class SearchIndexer:
    """Indexes committed events whenever the events stream moves."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._wake = asyncio.Event()
        self._latest = 0

    def on_commit(self, changes: Changes) -> None:
        """Writer listener: note the newest event position and wake the indexer."""
        position = changes.streams.get("events")
        if position is not None and position > self._latest:
            self._latest = position
            self._wake.set()

    async def catch_up(self) -> None:
        """Index everything committed so far (also used by tests and at shutdown)."""
        row = await self._db.fetchone("SELECT COALESCE(MAX(stream_ordering), 0) FROM events")
        self._latest = max(self._latest, int(row[0]) if row else 0)
        while True:
            upto = self._latest
            done = await self._db.write(lambda tx: search_store.index_new_events(tx, upto))
            if done >= upto:
                return

    async def run(self) -> None:
        """The background task: index after each wake, in gathered rounds."""
        self._wake.set()   # index whatever was left from before a restart
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:
                log.exception("search indexing failed; it will be retried at the next wake")
