"""One server per data directory (pocketserver/serving_lock.py): the lock, the PID it names, and
the signal the command line sends only to a pocketserver."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from pocketserver import serving_lock


def test_the_holder_is_named_and_a_second_taker_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fd = serving_lock.hold(data)           # creates the data directory if need be
    assert fd is not None
    try:
        assert (data / serving_lock.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with serving_lock.offline(data) as serving:
            assert isinstance(serving, serving_lock.AlreadyServing) and serving.pid == os.getpid()
    finally:
        os.close(fd)
    with serving_lock.offline(data) as serving:
        assert serving is None
        with serving_lock.offline(data) as nested:      # a server starting meanwhile is refused
            assert isinstance(nested, serving_lock.AlreadyServing)
    with serving_lock.offline(data) as serving:           # let go of again
        assert serving is None


def test_only_a_pocketserver_is_signalled(tmp_path: Path) -> None:
    """A PID read from the file may be a stale one reused by another program: it is not signalled
    (SIGUSR1's default action would end it)."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert serving_lock.signal_server(other.pid) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert serving_lock.signal_server(None) is False


async def test_a_signalled_server_takes_deactivated_users_out_of_their_rooms(api) -> None:
    """What the signal sets off: accounts the command line deactivated (only the account) leave
    their rooms through the server; the same pass runs at every start."""
    alice, erin = await api.tokens("alice", "erin")
    room_id = await api.create_room(alice, preset="public_chat")
    status, _ = await api.call("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=erin)
    assert status == 200
    await api.server.account.deactivate_user("@erin:test.local", erase=False, leave_rooms=False)
    _, members = await api.call("GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members", token=alice)
    assert "@erin:test.local" in members["joined"]       # not yet: the server's part
    api.server.finish_deactivations_soon()
    for _ in range(100):
        _, members = await api.call("GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members", token=alice)
        if "@erin:test.local" not in members["joined"]:
            break
        await asyncio.sleep(0.02)
    assert set(members["joined"]) == {"@alice:test.local"}
