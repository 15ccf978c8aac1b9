"""Keeps the full-text index up to date, off the request path.

New events are indexed by a background task woken after commits, in one write job per round, so
a message send writes no index pages itself and many messages share one index segment. The job
rides along in the next commit that happens anyway (`Database.write_along`): in a conversation,
the members' read receipts, or the next message. So indexing a message costs no disk sync of its
own. A search first indexes whatever is still waiting, so it always finds every sent message.
"""
from __future__ import annotations

import asyncio
import logging

from pocketserver.errors import storage_failure_reason
from pocketserver.storage import search as search_store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Changes, Transaction

log = logging.getLogger(__name__)
# Wait this long after a wake before indexing, so a burst of messages is indexed together.
GATHER_SECONDS = 1.0
# Then wait at most this long for a commit to ride along in before committing alone.
RIDE_WITHIN_SECONDS = 30.0


class SearchIndexer:
    """Indexes committed events whenever the events stream moves."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._wake = asyncio.Event()
        self._latest = 0       # the newest committed event
        self._indexed = 0      # indexed up to here

    def on_commit(self, changes: Changes) -> None:
        """Writer listener: note the newest event position and wake the indexer."""
        position = changes.streams.get("events")
        if position is not None and position > self._latest:
            self._latest = position
            self._wake.set()

    async def _index_round(self, tx: Transaction) -> tuple[int, int]:
        """Index the events committed so far; returns (indexed up to, asked up to).

        A round stops short of what it was asked for only when it reached its size limit.
        """
        upto = self._latest
        return await search_store.index_new_events(tx, upto), upto

    async def catch_up(self) -> None:
        """Index everything committed so far, now (at start, before a search, at shutdown).

        Events committed meanwhile are left to the next round: under steady sends, chasing them
        would put an index round in every batch.
        """
        if not self._indexed:
            row = await self._db.fetchone("SELECT COALESCE(MAX(stream_ordering), 0) FROM events")
            self._latest = max(self._latest, int(row[0]) if row else 0)
        target = self._latest
        while True:
            self._indexed, _ = await self._db.write(self._index_round)
            if self._indexed >= target:
                return

    async def index_waiting(self) -> None:
        """Before a search: index the events still waiting for their round (usually none)."""
        if self._indexed < self._latest:
            await self.catch_up()

    async def run(self) -> None:
        """The background task: index after each wake, in gathered rounds that ride along."""
        try:
            await self.catch_up()        # whatever was left from before a restart
        except Exception as exc:
            _log_failure(exc)
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            if self._indexed >= self._latest:
                continue
            try:
                self._indexed, asked = await self._db.write_along(self._index_round, within=RIDE_WITHIN_SECONDS)
                if self._indexed < asked:
                    await self.catch_up()            # more than one round's worth
            except Exception as exc:
                _log_failure(exc)


def _log_failure(exc: Exception) -> None:
    """A disk that refuses writes (full, read-only) is one line; anything else gets its traceback."""
    found = storage_failure_reason(exc)
    if found is not None:
        log.warning("search indexing paused: %s; it resumes once the admin has %s", *found)
    else:
        log.exception("search indexing failed; it will be retried at the next wake")
