"""Transaction IDs are kept for a day: retransmissions within it are recognised, older rows go."""
from __future__ import annotations

import asyncio
from typing import Any

from pocketserver.storage import transaction_ids

C = "/_matrix/client/v3"
DAY_AND_AN_HOUR_MS = 25 * 3600 * 1000


async def _age_every_transaction_id(api: Any) -> None:
    async def job(tx: Any) -> None:
        await tx.execute("UPDATE transaction_ids SET created_ts = created_ts - ?", (DAY_AND_AN_HOUR_MS,))
        await tx.execute("UPDATE to_device_txns SET received_ts = received_ts - ?", (DAY_AND_AN_HOUR_MS,))
    await api.server.db.write(job)


async def test_transaction_ids_older_than_a_day_are_forgotten(api: Any) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice["access_token"])
    send = lambda txn: api.call("PUT", f"{C}/rooms/{room}/send/m.room.message/{txn}",   # noqa: E731
                                {"msgtype": "m.text", "body": txn}, token=alice["access_token"])
    to_device = lambda txn: api.call("PUT", f"{C}/sendToDevice/m.test/{txn}",            # noqa: E731
                                     {"messages": {bob["user_id"]: {bob["device_id"]: {"n": txn}}}},
                                     token=alice["access_token"])
    status, first = await send("old")
    assert status == 200
    assert (await to_device("old"))[0] == 200
    await _age_every_transaction_id(api)
    status, recent = await send("recent")
    assert status == 200

    assert await api.server.forget_old_transaction_ids() == 2      # the aged event's and to-device's
    assert await api.server.forget_old_transaction_ids() == 0      # nothing older left

    # The recent one is still recognised as a retransmission; the forgotten one is a new request.
    assert (await send("recent"))[1]["event_id"] == recent["event_id"]
    status, again = await send("old")
    assert status == 200 and again["event_id"] != first["event_id"]
    assert (await to_device("old"))[0] == 200
    status, synced = await api.call("GET", f"{C}/sync", token=bob["access_token"], query={"timeout": "0"})
    assert status == 200
    assert [e["content"] for e in synced["to_device"]["events"]] == [{"n": "old"}, {"n": "old"}]

    # The event keeps its transaction ID: the sender's device still sees it on the first send.
    status, synced = await api.call("GET", f"{C}/sync", token=alice["access_token"], query={"timeout": "0"})
    timeline = synced["rooms"]["join"][room]["timeline"]["events"]
    by_id = {e["event_id"]: e for e in timeline}
    assert by_id[first["event_id"]]["unsigned"]["transaction_id"] == "old"
    assert by_id[again["event_id"]]["unsigned"]["transaction_id"] == "old"


async def test_a_server_without_old_transaction_ids_writes_nothing(api: Any, monkeypatch: Any) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])
    status, _ = await api.call("PUT", f"{C}/rooms/{room}/send/m.room.message/t1",
                               {"msgtype": "m.text", "body": "hi"}, token=alice["access_token"])
    assert status == 200

    async def no_write(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("wrote with nothing to forget")
    monkeypatch.setattr(api.server.db, "write_along", no_write)
    assert await api.server.forget_old_transaction_ids() == 0


async def test_the_cut_off_is_a_day(api: Any) -> None:
    now = 10 * transaction_ids.KEEP_MS
    rows = [("@a:hs", "D", "just-kept", "$1", now - transaction_ids.KEEP_MS),
            ("@a:hs", "D", "just-gone", "$2", now - transaction_ids.KEEP_MS - 1)]
    await api.server.db.write(lambda tx: tx.executemany(
        "INSERT INTO transaction_ids (user_id, device_id, txn_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?)",
        rows))
    assert await transaction_ids.has_old(api.server.db, now)
    assert await api.server.db.write(lambda tx: transaction_ids.delete_old(tx, now)) == 1
    left = await api.server.db.fetchall("SELECT txn_id FROM transaction_ids WHERE user_id = '@a:hs'")
    assert [r[0] for r in left] == ["just-kept"]
    assert not await transaction_ids.has_old(api.server.db, now)


async def test_the_server_forgets_them_in_the_background(make_api: Any, monkeypatch: Any) -> None:
    from pocketserver import server as server_module
    monkeypatch.setattr(server_module, "FLUSH_INTERVAL_S", 0.05)
    monkeypatch.setattr(server_module, "FLUSH_RIDE_WITHIN_S", 0.0)
    api = await make_api()
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])
    status, _ = await api.call("PUT", f"{C}/rooms/{room}/send/m.room.message/t1",
                               {"msgtype": "m.text", "body": "hi"}, token=alice["access_token"])
    assert status == 200
    count = "SELECT COUNT(*) FROM transaction_ids"
    assert (await api.server.db.fetchone(count))[0] == 1
    await _age_every_transaction_id(api)
    for _ in range(200):
        if (await api.server.db.fetchone(count))[0] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await api.server.db.fetchone(count))[0] == 0


async def test_a_pass_deletes_a_bounded_number(api: Any) -> None:
    """A database that kept every transaction ID is pruned over several passes, not one long one."""
    now = 10 * transaction_ids.KEEP_MS
    rows = [("@a:hs", "D", f"t{n}", f"${n}", 0) for n in range(25)]
    await api.server.db.write(lambda tx: tx.executemany(
        "INSERT INTO transaction_ids (user_id, device_id, txn_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?)",
        rows))
    deleted = [await api.server.db.write(lambda tx: transaction_ids.delete_old(tx, now, most=10)) for _ in range(4)]
    assert deleted == [10, 10, 5, 0]
