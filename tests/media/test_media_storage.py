"""The content store: hashed names, atomic placement, no half files, sweeping; and the media rows.

Spec: client-server-api, "Content repository".
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from pocketserver.storage import media as store
from pocketserver.storage.database import Database
from pocketserver.storage.media import ContentStore, MediaRecord, UploadTooLarge


async def chunks(*parts: bytes, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        if fail_after is not None and i == fail_after:
            raise ConnectionResetError("client went away")
        yield part


def all_files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


async def test_receive_names_files_by_hash_and_stores_once(tmp_path: Path) -> None:
    files = ContentStore(tmp_path)
    data = b"x" * 3_000_000
    h1, n1 = await files.receive(chunks(data[:1000], data[1000:]), limit=10_000_000)
    h2, n2 = await files.receive(chunks(data), limit=10_000_000)
    assert h1 == h2 == hashlib.sha256(data).hexdigest() and n1 == n2 == len(data)
    assert all_files(files.content_dir) == [files.content_path(h1)]
    assert files.content_path(h1).read_bytes() == data
    assert not list(files.tmp_dir.iterdir())


async def test_failed_or_oversized_uploads_leave_no_file(tmp_path: Path) -> None:
    """A body that breaks off (or runs past the limit) leaves nothing where readers look."""
    files = ContentStore(tmp_path)
    with pytest.raises(UploadTooLarge):
        await files.receive(chunks(b"a" * 600, b"b" * 600), limit=1000)
    with pytest.raises(ConnectionResetError):
        await files.receive(chunks(b"a" * 2_000_000, b"b", fail_after=1), limit=10_000_000)
    assert all_files(tmp_path) == []


def test_paths_are_only_ever_made_of_hashes(tmp_path: Path) -> None:
    files = ContentStore(tmp_path)
    for bad in ("../../etc/passwd", "/etc/passwd", "AB" * 32, "a" * 63, ""):
        with pytest.raises(ValueError):
            files.content_path(bad)
        with pytest.raises(ValueError):
            files.thumbnail_path(bad, 32, 32, "crop", False)
    with pytest.raises(ValueError):
        files.thumbnail_path("a" * 64, 32, 32, "../x", False)


def test_sweeps(tmp_path: Path) -> None:
    """Temp files of dead uploads go; unreferenced content goes only after the grace period."""
    files = ContentStore(tmp_path)
    files.new_temp_path().write_bytes(b"half an upload")
    assert files.sweep_temp(0) == 1 and not list(files.tmp_dir.iterdir())
    kept, old, fresh = "a" * 64, "b" * 64, "c" * 64
    for h in (kept, old, fresh):
        files.put_bytes(files.content_path(h), h.encode())
        files.put_bytes(files.thumbnail_path(h, 32, 32, "crop", False), b"thumb")
    long_ago = time.time() - 3600
    for h in (kept, old):
        os.utime(files.content_path(h), (long_ago, long_ago))
    assert files.sweep_unreferenced({kept}) == 1
    assert files.content_path(kept).exists() and files.content_path(fresh).exists()
    assert not files.content_path(old).exists()
    assert not files.thumbnail_path(old, 32, 32, "crop", False).exists()
    assert files.thumbnail_path(kept, 32, 32, "crop", False).exists()


async def test_rows_pending_quota_and_purge(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite")
    await db.open()
    try:
        def record(media_id: str, content_hash: str | None, length: int | None, ts: int,
                   expires: int | None = None) -> MediaRecord:
            return MediaRecord("test.local", media_id, "@alice:test.local", content_hash, "text/plain",
                               None, length, ts, ts if content_hash else None, expires, True)

        now = int(time.time() * 1000)

        async def setup(tx):
            await store.insert_media(tx, record("old", "a" * 64, 10, now - 10 * 86_400_000))
            await store.insert_media(tx, record("new", "a" * 64, 20, now))
            await store.insert_media(tx, record("pending", None, None, now, expires=now + 1000))
            await store.insert_media(tx, record("expired", None, None, now, expires=now - 1))
        await db.write(setup)
        assert await store.get_user_usage(db, "@alice:test.local") == 30
        assert await db.write(lambda tx: store.get_pending(tx, "@alice:test.local", now)) == (1, now + 1000)
        assert store.has_expired_pending(db, now)
        assert await db.write(lambda tx: store.delete_expired_pending(tx, now)) == 1
        assert not store.has_expired_pending(db, now)                  # "pending" has 1 s left
        assert store.has_expired_pending(db, now + 1000)
        assert await db.write(lambda tx: store.set_uploaded_content(
            tx, "test.local", "pending", "b" * 64, "image/png", "p.png", 5, now))
        assert not await db.write(lambda tx: store.set_uploaded_content(   # cannot overwrite
            tx, "test.local", "pending", "c" * 64, "image/png", None, 5, now))
        deleted, orphans = await db.write(lambda tx: store.delete_media_unused_since(
            tx, now - 86_400_000, "test.local", local=True, remote=False))
        assert (deleted, orphans) == (1, set())             # "new" still uses the bytes of "old"
        assert await store.get_media(db, "test.local", "old") is None
        assert await store.get_referenced_hashes(db) == {"a" * 64, "b" * 64}
    finally:
        await db.close()
