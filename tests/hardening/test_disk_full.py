"""A full or read-only disk: writes are refused with a Matrix error (never a 500), reads keep
working, nothing acknowledged is lost, no half media file shows, and the server recovers by
itself once space (or write access) is back.

The data directory sits on a small tmpfs of the test's own (tmpfs enforces its size, so ENOSPC
is real). Needs root for mount; skipped otherwise.
Spec: client-server-api, "Standard error response" (M_RESOURCE_LIMIT_EXCEEDED, admin_contact);
DESIGN.md, "The write path" (durable before 200).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest

from tests.conftest import Api, RunningServer, start_server

BIG_BODY = "x" * 30_000     # fills the WAL quickly; well under the 64 KiB event limit


def mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True)


def fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem refuses (ENOSPC)."""
    ballast = directory / "ballast"
    chunk = b"\0" * 65_536
    with open(ballast, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with open(ballast, "ab", buffering=0) as f:     # and the last few bytes
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return ballast


class Client:
    def __init__(self, http: aiohttp.ClientSession, server: RunningServer, token: str) -> None:
        self.http, self.base, self.headers = http, server.base_url, {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"]["Content-Type"] = "application/octet-stream"
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base + path, **kwargs) as resp:
            text = await resp.read()
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, text

    async def send(self, room_id: str, txn: str, body: str) -> tuple[int, Any]:
        return await self.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn}",
                               {"msgtype": "m.text", "body": body})


def assert_refused_cleanly(status: int, body: Any) -> None:
    assert status == 503, (status, body)
    assert body["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED" and body["admin_contact"], body
    assert "Traceback" not in repr(body)


def media_files(media: Path) -> set[str]:
    return {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()}


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    mount_tmpfs(data, "8m")
    yield data
    unmount(data)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def test_disk_full_refuses_writes_keeps_reads_and_recovers(tmp_path: Path, small_data_dir: Path,
                                                                 http: aiohttp.ClientSession) -> None:
    server = start_server(tmp_path, admin_contact="mailto:admin@test.local")
    try:
        alice = Client(http, server, (await server.register_shared_secret(http, "alice", "pw"))["access_token"])
        status, body = await alice.call("POST", "/_matrix/client/v3/createRoom", {"name": "full"})
        assert status == 200, body
        room_id = body["room_id"]
        acked: dict[str, str] = {}
        for i in range(5):
            status, body = await alice.send(room_id, f"before{i}", f"before-{i}")
            assert status == 200, body
            acked[body["event_id"]] = f"before-{i}"
        status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=b"kept media")
        assert status == 200, body
        kept_mxc = body["content_uri"]
        ballast = fill(small_data_dir)

        # Writes: each either lands (the WAL may still have room) or is refused cleanly; soon all are refused.
        refused = 0
        for i in range(400):
            status, body = await alice.send(room_id, f"full{i}", f"full-{i}-{BIG_BODY}")
            if status == 200:
                acked[body["event_id"]] = f"full-{i}-"
                continue
            assert_refused_cleanly(status, body)
            refused += 1
            if refused >= 3:
                break
        assert refused >= 3, "the disk never filled up"
        media_before = media_files(small_data_dir / "media")
        status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=os.urandom(300_000))
        assert_refused_cleanly(status, body)
        assert media_files(small_data_dir / "media") == media_before, "a half media file was left behind"
        status, body = await alice.call("PUT", "/_matrix/client/v3/profile/@alice:test.local/displayname",
                                        {"displayname": "Alice"})
        assert_refused_cleanly(status, body)

        # Reads keep working and show everything acknowledged.
        status, body = await alice.call("GET", "/_matrix/client/v3/sync")
        assert status == 200, body
        status, body = await alice.call("GET", f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=1000")
        assert status == 200, body
        seen = {e["event_id"] for e in body["chunk"]}
        assert set(acked) <= seen
        assert (await alice.call("GET", "/_matrix/client/v3/profile/@alice:test.local"))[0] == 200
        status, body = await alice.call("GET", "/_matrix/client/v1/media/download/" + kept_mxc[len("mxc://"):])
        assert status == 200 and body == b"kept media"

        # Space is back: the server recovers without a restart.
        ballast.unlink()
        status, body = await alice.send(room_id, "after", "after")
        assert status == 200, body
        acked[body["event_id"]] = "after"
        status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=b"after media")
        assert status == 200, body
    finally:
        assert server.stop() == 0, (tmp_path / "server.log").read_text()[-3000:]
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    conn = sqlite3.connect(small_data_dir / "homeserver.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT event_id, json FROM events WHERE type = 'm.room.message'").fetchall())
    finally:
        conn.close()
    for event_id, body_start in acked.items():
        assert event_id in stored and body_start in stored[event_id], f"acknowledged {event_id} lost"


async def test_read_only_media_remount_refuses_uploads_and_recovers(tmp_path: Path,
                                                                   http: aiohttp.ClientSession) -> None:
    """The media folder on its own filesystem, remounted read-only under the running server.

    (The database's filesystem cannot be: Linux refuses `remount,ro` while a file on it is open
    for writing, and SQLite keeps the database open. That case is covered in-process below.)
    """
    media = tmp_path / "data" / "media"
    mount_tmpfs(media, "8m")
    try:
        server = start_server(tmp_path)
        try:
            alice = Client(http, server, (await server.register_shared_secret(http, "alice", "pw"))["access_token"])
            status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=b"kept media")
            assert status == 200, body
            kept = body["content_uri"][len("mxc://"):]
            done = remount(media, "ro")
            assert done.returncode == 0, done.stderr
            try:
                before = media_files(media)
                status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=b"refused")
                assert_refused_cleanly(status, body)
                assert media_files(media) == before
                status, body = await alice.call("GET", f"/_matrix/client/v1/media/download/{kept}")
                assert status == 200 and body == b"kept media"
                status, body = await alice.call("POST", "/_matrix/client/v3/createRoom", {})
                assert status == 200, body      # the database is elsewhere and still writable
            finally:
                assert remount(media, "rw").returncode == 0
            status, body = await alice.call("POST", "/_matrix/media/v3/upload", raw=b"after")
            assert status == 200, body
        finally:
            assert server.stop() == 0
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        unmount(media)


async def test_database_remount_read_only_is_refused_by_the_kernel(tmp_path: Path, small_data_dir: Path) -> None:
    """Documents why the read-only database case is emulated: with the server running, the kernel
    answers `mount -o remount,ro` with EBUSY (SQLite holds the database open for writing)."""
    server = start_server(tmp_path)
    try:
        done = remount(small_data_dir, "ro")
        if done.returncode == 0:    # a kernel that allows it: put it back, the emulation still runs
            remount(small_data_dir, "rw")
        else:
            assert "busy" in done.stderr.lower(), done.stderr
    finally:
        assert server.stop() == 0


async def test_starting_on_a_read_only_data_directory(tmp_path: Path, small_data_dir: Path, http) -> None:
    """A data directory that is already read-only when the server starts (a remount after a disk
    error, a backup mounted by mistake): SQLite cannot open its write-ahead log there, so the
    server stops at once with a one-line error naming the directory, not a traceback; made
    writable again, it starts with everything in place."""
    server = start_server(tmp_path)
    try:
        alice = await server.register_shared_secret(http, "alice", "alice-pw")
    finally:
        assert server.stop() == 0
    done = remount(small_data_dir, "ro")
    assert done.returncode == 0, done.stderr
    try:
        run = subprocess.run([sys.executable, "-m", "pocketserver", "serve", "--config",
                              str(tmp_path / "pocketserver.toml")], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, run
        assert run.stderr.startswith(f"error: the data directory {small_data_dir} is read-only"), run.stderr
        assert "Traceback" not in run.stderr + run.stdout
    finally:
        assert remount(small_data_dir, "rw").returncode == 0
    server = start_server(tmp_path)
    try:
        async with http.get(f"{server.base_url}/_matrix/client/v3/account/whoami",
                            headers={"Authorization": f"Bearer {alice['access_token']}"}) as resp:
            assert resp.status == 200
    finally:
        assert server.stop() == 0


async def test_read_only_database_refuses_writes_keeps_reads_and_recovers(api: Api) -> None:
    """SQLite answers SQLITE_READONLY, as for a database on a read-only filesystem; the server maps it
    to 503 M_RESOURCE_LIMIT_EXCEEDED, keeps serving reads and writes again once it is writable."""
    alice = await api.register("alice")
    token = alice["access_token"]
    status, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=token)
    room_id = body["room_id"]
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/1",
                                  {"msgtype": "m.text", "body": "kept"}, token=token)
    assert status == 200
    conn = api.server.db._write_conn
    conn.execute("PRAGMA query_only = ON")
    try:
        status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/2",
                                      {"msgtype": "m.text", "body": "refused"}, token=token)
        assert status == 503 and body["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED", body
        assert "read-only" in body["error"] and body["admin_contact"]
        status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{room_id}/messages",
                                      query={"dir": "b"}, token=token)
        assert status == 200 and "kept" in repr(body) and "refused" not in repr(body)
        assert (await api.call("GET", "/_matrix/client/v3/sync", token=token))[0] == 200
    finally:
        conn.execute("PRAGMA query_only = OFF")
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/3",
                                  {"msgtype": "m.text", "body": "after"}, token=token)
    assert status == 200, body


def test_storage_failures_map_to_resource_limit_exceeded() -> None:
    """Disk full, read-only and I/O errors from SQLite or the OS become 503 M_RESOURCE_LIMIT_EXCEEDED;
    other errors are left alone (they stay 500s with a logged traceback). Runs without root."""
    from pocketserver.errors import storage_failure

    full = sqlite3.OperationalError("database or disk is full")
    readonly = sqlite3.connect(":memory:")
    readonly.execute("PRAGMA query_only = ON")
    try:
        readonly.execute("CREATE TABLE t (x)")
    except sqlite3.OperationalError as exc:
        read_only_error = exc
    for err, word, remedy in ((full, "full", "freed space"), (read_only_error, "read-only", "writable"),
                              (OSError(errno.ENOSPC, "No space left on device"), "full", "freed space"),
                              (OSError(errno.EROFS, "Read-only file system"), "read-only", "writable")):
        mapped = storage_failure(err)
        assert mapped is not None and mapped.status == 503 and word in mapped.message, err
        assert remedy in mapped.message, mapped.message
        assert mapped.body()["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED"
    for err in (sqlite3.IntegrityError("UNIQUE constraint failed"), OSError(errno.ENOENT, "gone"),
                ValueError("x")):
        assert storage_failure(err) is None
