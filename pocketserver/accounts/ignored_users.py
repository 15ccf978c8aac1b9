"""Who each user ignores (their `m.ignored_user_list` account data), kept in memory.

Sync, history reads and push consult it for every event they hand out, so it is read from the
database once per user and forgotten when the user changes it.
Spec: client-server-api, "Ignoring Users".
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pocketserver.storage import account_data as account_data_store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

EVENT_TYPE = "m.ignored_user_list"
MAX_USERS_KEPT = 10_000
NOBODY: frozenset[str] = frozenset()


def ignored_in(content: Any) -> frozenset[str]:
    """The user IDs an `m.ignored_user_list` content names (its `ignored_users` keys)."""
    ignored = content.get("ignored_users") if isinstance(content, dict) else None
    return frozenset(u for u in ignored if isinstance(u, str)) if isinstance(ignored, dict) and ignored else NOBODY


class IgnoredUsers:
    """A bounded map from user to the users they ignore, loaded on first use."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._changes = 0    # a load that overlaps a change must not keep what it read

    def cached(self, user_id: str) -> frozenset[str] | None:
        return self._known.get(user_id)

    async def of(self, user_id: str) -> frozenset[str]:
        found = self._known.get(user_id)
        if found is not None:
            return found
        changes = self._changes
        content = await account_data_store.get_account_data(self._db, user_id, account_data_store.GLOBAL, EVENT_TYPE)
        return self._keep(user_id, ignored_in(content), changes)

    async def of_tx(self, tx: Transaction, user_id: str) -> frozenset[str]:
        """The same, read inside a write job (push evaluation runs there). If the job's batch held
        an uncommitted new list, `changed` follows it whether the batch commits or not."""
        found = self._known.get(user_id)
        if found is not None:
            return found
        changes = self._changes
        content = await account_data_store.get_account_data_tx(tx, user_id, account_data_store.GLOBAL, EVENT_TYPE)
        return self._keep(user_id, ignored_in(content), changes)

    def _keep(self, user_id: str, ignored: frozenset[str], changes: int) -> frozenset[str]:
        if changes == self._changes:
            self._known[user_id] = ignored
            while len(self._known) > MAX_USERS_KEPT:
                self._known.popitem(last=False)
        return ignored

    def changed(self, user_id: str) -> None:
        """Called after every write of the user's list, committed or not."""
        self._changes += 1
        self._known.pop(user_id, None)
