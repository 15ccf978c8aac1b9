"""The notifier wakes waiting /sync requests, and says whether a wake concerned the user itself.

Spec: client-server-api, "GET /_matrix/client/v3/sync" (timeout).
"""
from __future__ import annotations

import asyncio

from pocketserver.sync.notifier import Notifier


async def test_wait_ends_on_a_wake_or_at_the_timeout() -> None:
    notifier = Notifier()
    waiter = notifier.register("@alice:test.local", ["!room:test.local"])
    assert await notifier.wait(waiter, 0.01) is False
    asyncio.get_running_loop().call_soon(lambda: notifier.wake(rooms=["!room:test.local"]))
    assert await notifier.wait(waiter, 10) is True
    assert waiter.user_woken is False           # a room's news: the user's memberships did not change
    notifier.unregister(waiter)


async def test_a_wake_for_the_user_is_marked() -> None:
    notifier = Notifier()
    waiter = notifier.register("@alice:test.local", [])
    asyncio.get_running_loop().call_soon(lambda: notifier.wake(users=["@alice:test.local"]))
    assert await notifier.wait(waiter, 10) is True
    assert waiter.user_woken is True
    notifier.unregister(waiter)
    assert notifier.waiting("@alice:test.local") == 0
