"""The in-memory map of who ignores whom: parsing, and never keeping a list read across a change.

Spec: client-server-api, "Ignoring Users".
"""
from __future__ import annotations

from pocketserver.accounts import ignored_users
from pocketserver.accounts.ignored_users import IgnoredUsers, ignored_in


def test_the_list_is_the_keys_of_ignored_users() -> None:
    assert ignored_in({"ignored_users": {"@a:x": {}, "@b:x": {"note": 1}}}) == {"@a:x", "@b:x"}
    for junk in (None, {}, {"ignored_users": []}, {"ignored_users": "@a:x"}, [], "x"):
        assert ignored_in(junk) == frozenset()


async def test_a_read_overlapping_a_change_is_not_kept(monkeypatch) -> None:
    stored = {"@bob:x": {"ignored_users": {"@mallory:x": {}}}}
    cache = IgnoredUsers(db=None)
    change_during_read = True

    async def read(db, user_id, room_id, data_type):
        content = stored.get(user_id)
        if change_during_read:        # the user saves a new list while this read is under way
            stored[user_id] = {"ignored_users": {}}
            cache.changed(user_id)
        return content

    monkeypatch.setattr(ignored_users.account_data_store, "get_account_data", read)
    assert await cache.of("@bob:x") == {"@mallory:x"}    # what that read saw...
    assert cache.cached("@bob:x") is None               # ...is not kept
    change_during_read = False
    assert await cache.of("@bob:x") == frozenset()
    assert cache.cached("@bob:x") == frozenset()
    cache.changed("@bob:x")
    assert cache.cached("@bob:x") is None
