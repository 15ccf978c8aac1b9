"""The notifier wakes waiting /sync requests, says whether a wake concerned the user itself, and
ends every wait when the server stops.

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


async def test_closing_ends_every_wait_as_a_timeout() -> None:
    notifier = Notifier()
    sleeping = notifier.register("@alice:test.local", ["!room:test.local"])
    waiting = asyncio.create_task(notifier.wait(sleeping, 60))
    await asyncio.sleep(0)
    assert notifier.waiting("@alice:test.local") == 1

    notifier.close()
    assert await asyncio.wait_for(waiting, 5) is False      # answered now, as at its timeout
    later = notifier.register("@bob:test.local", [])
    assert await asyncio.wait_for(notifier.wait(later, 60), 5) is False   # begun after: no wait
    for waiter in (sleeping, later):
        notifier.unregister(waiter)
