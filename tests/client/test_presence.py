"""Presence over HTTP: set and get, who may see whom, presence in /sync, timeouts and persistence.

Spec: client-server-api, "Presence".
"""
from __future__ import annotations

import asyncio
import time

from pocketserver.ephemeral import presence as presence_module
from pocketserver.ephemeral.presence import IDLE_TIMER_MS, SYNC_ONLINE_TIMEOUT_MS
from test_typing import ALICE, BOB, SYNC, shared_room

P = "/_matrix/client/v3/presence"


def presence_of(sync: dict) -> dict[str, dict]:
    return {e["sender"]: e["content"] for e in sync["presence"]["events"] if e["type"] == "m.presence"}


async def test_set_and_get(api) -> None:
    _, a, b = await shared_room(api)
    status, body = await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online", "status_msg": "cooking"},
                                  token=a)
    assert (status, body) == (200, {})
    status, got = await api.call("GET", f"{P}/{ALICE}/status", token=b)
    assert status == 200
    assert got["presence"] == "online" and got["status_msg"] == "cooking" and got["currently_active"] is True
    assert 0 <= got["last_active_ago"] < 10_000

    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "unavailable"}, token=a)
    _, got = await api.call("GET", f"{P}/{ALICE}/status", token=a)
    assert got["presence"] == "unavailable" and "status_msg" not in got and "currently_active" not in got
    # A user who never set presence is offline.
    assert await api.call("GET", f"{P}/{BOB}/status", token=a) == (200, {"presence": "offline"})


async def test_visibility_and_refusals(api) -> None:
    _, a, b = await shared_room(api)
    carol = (await api.register("carol"))["access_token"]
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online"}, token=a)
    status, err = await api.call("GET", f"{P}/{ALICE}/status", token=carol)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("GET", f"{P}/@nobody:test.local/status", token=a)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("GET", f"{P}/not-a-user/status", token=a)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, err = await api.call("PUT", f"{P}/{BOB}/status", {"presence": "online"}, token=a)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    for body, code in (({"presence": "busy"}, "M_INVALID_PARAM"), ({}, "M_MISSING_PARAM"),
                       ({"presence": "online", "status_msg": 3}, "M_INVALID_PARAM")):
        status, err = await api.call("PUT", f"{P}/{ALICE}/status", body, token=a)
        assert (status, err["errcode"]) == (400, code), body


async def test_presence_in_sync(api) -> None:
    room, a, b = await shared_room(api)
    carol = (await api.register("carol"))["access_token"]
    _, first = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=b)
    _, first_c = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=carol)
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online", "status_msg": "hi"}, token=a)

    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"], "set_presence": "offline"}, token=b)
    assert presence_of(incr)[ALICE]["status_msg"] == "hi"
    assert presence_of(incr)[ALICE]["presence"] == "online"
    _, quiet = await api.call("GET", SYNC, query={"since": incr["next_batch"], "set_presence": "offline"}, token=b)
    assert presence_of(quiet) == {}
    # carol shares no room with alice.
    _, other = await api.call("GET", SYNC, query={"since": first_c["next_batch"], "set_presence": "offline"},
                              token=carol)
    assert ALICE not in presence_of(other)
    # Initial sync: everyone sharing a room who is not offline, and the user themself.
    _, initial = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=b)
    assert set(presence_of(initial)) == {ALICE}
    _, own = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=a)
    assert ALICE in presence_of(own)


async def test_long_poll_woken_by_presence(api) -> None:
    room, a, b = await shared_room(api)
    # Alice syncs: a user who never syncs (nor is active) times out to offline at once.
    await api.call("GET", SYNC, token=a)
    _, first = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=b)
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000",
                                                            "set_presence": "offline"}, token=b))
    while not api.server.notifier.waiting(BOB):
        await asyncio.sleep(0)
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "unavailable"}, token=a)
    _, woke = await asyncio.wait_for(poll, 10)
    assert presence_of(woke)[ALICE]["presence"] == "unavailable"


async def test_sync_sets_presence_and_timeouts(api) -> None:
    room, a, b = await shared_room(api)
    presence = api.server.presence
    _, first = await api.call("GET", SYNC, query={"set_presence": "offline"}, token=b)
    await api.call("GET", SYNC, token=a)                 # set_presence defaults to online
    _, got = await api.call("GET", f"{P}/{ALICE}/status", token=b)
    assert got["presence"] == "online"
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"], "set_presence": "offline"}, token=b)
    assert presence_of(incr)[ALICE]["presence"] == "online"

    await api.call("GET", SYNC, query={"set_presence": "unavailable"}, token=a)
    assert presence.state(ALICE).presence == "unavailable"
    # Activity (a typing notice) brings an unavailable user back online.
    await api.call("PUT", f"/_matrix/client/v3/rooms/{room}/typing/{ALICE}", {"typing": True}, token=a)
    assert presence.state(ALICE).presence == "online"

    # Idle for 5 minutes while still syncing: unavailable; no sync for 30 s more: offline.
    state = presence.state(ALICE)
    later = state.last_active_ts + IDLE_TIMER_MS + 1
    state.sync_until_ts = later
    await presence.handle_timeouts(later)
    assert presence.state(ALICE).presence == "unavailable"
    await presence.handle_timeouts(later + SYNC_ONLINE_TIMEOUT_MS + 1)
    assert presence.state(ALICE).presence == "offline"
    _, after = await api.call("GET", SYNC, query={"since": incr["next_batch"], "set_presence": "offline"}, token=b)
    assert presence_of(after)[ALICE]["presence"] == "offline"


async def test_presence_survives_restart(make_api) -> None:
    api = await make_api()
    _, a, _ = await shared_room(api)
    await api.call("GET", SYNC, query={"set_presence": "unavailable"}, token=a)   # or she times out
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "unavailable", "status_msg": "away"}, token=a)
    assert api.server.db.writer.stats.commits > 0
    await api.server.presence.flush()
    rows = await api.server.db.fetchall("SELECT user_id, presence, status_msg FROM presence")
    assert [tuple(r) for r in rows] == [(ALICE, "unavailable", "away")]
    api.server.presence._states.clear()
    await api.server.presence.load()
    assert api.server.presence.state(ALICE).status_msg == "away"


async def test_timeouts_are_applied_when_due_and_not_polled(api, monkeypatch) -> None:
    """The timeout task sleeps until the next timeout is due (without a timer while everyone is
    offline), so an idle server sleeps, and a user goes offline on time, not up to 5 s late."""
    monkeypatch.setattr(presence_module, "LAST_ACTIVE_GRANULARITY_MS", 150)
    monkeypatch.setattr(presence_module, "SYNC_ONLINE_TIMEOUT_MS", 300)
    monkeypatch.setattr(presence_module, "TIMEOUT_PASS_INTERVAL_S", 0.01)
    _, a, _ = await shared_room(api)
    presence = api.server.presence
    checks = 0
    check = presence.handle_timeouts

    async def counted(now: int | None = None) -> None:
        nonlocal checks
        checks += 1
        await check(now)
    monkeypatch.setattr(presence, "handle_timeouts", counted)
    await asyncio.sleep(0.3)
    assert checks == 0 and presence.next_timeout() is None         # everyone offline
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online"}, token=a)
    went_online = presence.state(ALICE).last_active_ts
    assert presence.next_timeout() == went_online + 150
    for _ in range(100):
        await asyncio.sleep(0.02)
        if presence.state(ALICE).presence == "offline":
            break
    assert presence.state(ALICE).presence == "offline"
    assert presence.now() - went_online < 1000
    # Not currently active after 150 ms, offline after 300 ms (a third check if a timer fired a
    # hair early); polling would have made dozens.
    assert 2 <= checks <= 3
    done = checks
    await asyncio.sleep(0.3)
    assert checks == done and presence.next_timeout() is None


async def test_timeouts_due_close_together_go_out_in_one_pass(api, monkeypatch) -> None:
    """Each presence change wakes the long-polls of everyone sharing a room with the user, so
    passes are spaced out: a timeout due soon after a pass waits for the next one."""
    monkeypatch.setattr(presence_module, "LAST_ACTIVE_GRANULARITY_MS", 100)
    monkeypatch.setattr(presence_module, "TIMEOUT_PASS_INTERVAL_S", 0.5)
    _, a, b = await shared_room(api)
    presence = api.server.presence
    passes: list[float] = []
    check = presence.handle_timeouts

    async def noted(now: int | None = None) -> None:
        passes.append(time.monotonic())
        await check(now)
    monkeypatch.setattr(presence, "handle_timeouts", noted)
    for token in (a, b):          # both sync (so neither times out to offline) and go online
        await api.call("GET", SYNC, query={"timeout": "0"}, token=token)
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online"}, token=a)
    await asyncio.sleep(0.05)
    await api.call("PUT", f"{P}/{BOB}/status", {"presence": "online"}, token=b)
    for _ in range(150):
        await asyncio.sleep(0.02)
        if not presence.state(ALICE).currently_active and not presence.state(BOB).currently_active:
            break
    assert not presence.state(ALICE).currently_active and not presence.state(BOB).currently_active
    assert len(passes) <= 2 and (len(passes) == 1 or passes[1] - passes[0] >= 0.45)


async def test_a_sync_during_a_change_sends_it_once(api, monkeypatch) -> None:
    """A change takes its stream position only when the notifier advances to it. Before, it took it
    first and then read who to wake: a /sync in between sent it under the older next_batch, and a
    client syncing from there got it again at once, in a loop while the read lasted (122,528
    /syncs instead of ~16,000 in the long load test, and deliveries 90 s late)."""
    _, a, b = await shared_room(api)
    await api.call("GET", SYNC, token=a)
    _, first = await api.call("GET", SYNC, query={"timeout": "0"}, token=b)
    gate = asyncio.Event()
    real = presence_module.room_store.get_users_sharing_a_room

    async def slow(db, user_id: str) -> set[str]:
        if user_id == ALICE:
            await gate.wait()        # the read of who shares a room with alice is under way
        return await real(db, user_id)
    monkeypatch.setattr(presence_module.room_store, "get_users_sharing_a_room", slow)
    change = asyncio.create_task(api.call("PUT", f"{P}/{ALICE}/status", {"presence": "unavailable"}, token=a))
    await asyncio.sleep(0.05)
    assert not change.done()
    _, during = await api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "0"}, token=b)
    gate.set()
    status, _ = await change
    assert status == 200
    _, after = await api.call("GET", SYNC, query={"since": during["next_batch"], "timeout": "0"}, token=b)
    _, again = await api.call("GET", SYNC, query={"since": after["next_batch"], "timeout": "0"}, token=b)
    sent = [e["content"]["presence"] for body in (during, after, again)
            for e in body.get("presence", {}).get("events", []) if e["sender"] == ALICE]
    assert sent == ["unavailable"]


async def test_presence_follows_the_most_present_device(api) -> None:
    """A laptop left idle (its syncs asking `unavailable`) does not make the user away while their
    phone syncs asking `online`, nor flip them back at each of its syncs; once the phone stops,
    the laptop's wish holds. One device alone may come back online by asking, as the spec's
    set_presence says ("automatically marked as online when it uses this API")."""
    _, laptop, b = await shared_room(api)
    status, login = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw"})
    assert status == 200, login
    phone = login["access_token"]
    presence = api.server.presence
    clock = [presence.now()]
    presence._clock = lambda: clock[0]

    await api.call("GET", SYNC, query={"set_presence": "unavailable", "timeout": "0"}, token=laptop)
    assert presence.state(ALICE).presence == "unavailable"
    await api.call("GET", SYNC, query={"timeout": "0"}, token=phone)          # set_presence: online
    assert presence.state(ALICE).presence == "online"
    clock[0] += 10_000
    await api.call("GET", SYNC, query={"set_presence": "unavailable", "timeout": "0"}, token=laptop)
    assert presence.state(ALICE).presence == "online"                         # the phone still counts
    clock[0] += SYNC_ONLINE_TIMEOUT_MS + 1_000                                # the phone stopped syncing
    await api.call("GET", SYNC, query={"set_presence": "unavailable", "timeout": "0"}, token=laptop)
    assert presence.state(ALICE).presence == "unavailable"
    # The laptop's user is back: its own sync asks for online.
    await api.call("GET", SYNC, query={"timeout": "0"}, token=laptop)
    assert presence.state(ALICE).presence == "online"

    # Idle by the timer (no activity for 5 minutes) is not undone by a sync: syncing is not activity.
    state = presence.state(ALICE)
    later = state.last_active_ts + IDLE_TIMER_MS + 1
    clock[0] = later
    state.sync_until_ts = later
    await presence.handle_timeouts(later)
    assert presence.state(ALICE).presence == "unavailable"
    await api.call("GET", SYNC, query={"timeout": "0"}, token=phone)
    assert presence.state(ALICE).presence == "unavailable"
    # Nor is an explicit "away".
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "online"}, token=phone)
    await api.call("PUT", f"{P}/{ALICE}/status", {"presence": "unavailable"}, token=phone)
    await api.call("GET", SYNC, query={"timeout": "0"}, token=phone)
    assert presence.state(ALICE).presence == "unavailable"
