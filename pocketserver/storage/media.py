"""Media storage: rows saying which mxc:// URIs exist and whose they are, and the files of bytes.

Spec: client-server-api, "Content repository".

Bytes live in files named by their SHA-256 under the media folder, so identical uploads share
one file and no client-chosen text ever becomes part of a path. A file is written under tmp/,
synced, then renamed into place, so a crash never leaves a half file where a reader looks.
Row writes go through the writer; file work happens before (or after) the job, never inside it.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


class MediaRecord(NamedTuple):
    """One media row; `content_hash` is None while a created ID waits for its upload."""

    origin: str
    media_id: str
    user_id: str | None
    content_hash: str | None
    media_type: str | None
    upload_name: str | None
    media_length: int | None
    created_ts: int
    uploaded_ts: int | None
    unused_expires_ts: int | None
    authenticated: bool


class ThumbnailRecord(NamedTuple):
    content_hash: str
    width: int
    height: int
    method: str
    animated: bool
    thumbnail_type: str
    thumbnail_length: int


_MEDIA_COLUMNS = ("origin, media_id, user_id, content_hash, media_type, upload_name, media_length, "
                  "created_ts, uploaded_ts, unused_expires_ts, authenticated")

GET_MEDIA = f"SELECT {_MEDIA_COLUMNS} FROM media WHERE origin = ? AND media_id = ?"

INSERT_MEDIA = f"""
INSERT INTO media ({_MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

SET_UPLOADED_CONTENT = """
UPDATE media SET content_hash = ?, media_type = ?, upload_name = ?, media_length = ?,
                 uploaded_ts = ?, unused_expires_ts = NULL
WHERE origin = ? AND media_id = ? AND content_hash IS NULL
"""

GET_USER_USAGE = """
SELECT COALESCE(SUM(media_length), 0) FROM media WHERE user_id = ? AND content_hash IS NOT NULL
"""

GET_PENDING = """
SELECT COUNT(*), MIN(unused_expires_ts) FROM media
WHERE user_id = ? AND content_hash IS NULL AND unused_expires_ts > ?
"""

DELETE_EXPIRED_PENDING = "DELETE FROM media WHERE content_hash IS NULL AND unused_expires_ts <= ?"
ANY_EXPIRED_PENDING = "SELECT 1 FROM media WHERE content_hash IS NULL AND unused_expires_ts <= ? LIMIT 1"

SET_LAST_ACCESS = """
UPDATE media SET last_access_ts = MAX(COALESCE(last_access_ts, 0), ?) WHERE origin = ? AND media_id = ?
"""

SELECT_UNUSED_SINCE = """
SELECT origin, media_id, content_hash FROM media
WHERE content_hash IS NOT NULL AND COALESCE(last_access_ts, uploaded_ts, created_ts) < ?
  AND ((? AND origin = ?) OR (? AND origin != ?))
"""

COUNT_HASH_USERS = "SELECT COUNT(*) FROM media WHERE content_hash = ?"

GET_THUMBNAIL = """
SELECT content_hash, width, height, method, animated, thumbnail_type, thumbnail_length
FROM media_thumbnails WHERE content_hash = ? AND width = ? AND height = ? AND method = ? AND animated = ?
"""

INSERT_THUMBNAIL = """
INSERT OR REPLACE INTO media_thumbnails (content_hash, width, height, method, animated,
                                         thumbnail_type, thumbnail_length, created_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

GET_REFERENCED_HASHES = "SELECT DISTINCT content_hash FROM media WHERE content_hash IS NOT NULL"


def _media(row: Iterable[object] | None) -> MediaRecord | None:
    if row is None:
        return None
    values = list(row)
    values[-1] = bool(values[-1])
    return MediaRecord(*values)  # type: ignore[arg-type]


async def get_media(db: Database, origin: str, media_id: str) -> MediaRecord | None:
    return _media(await db.fetchone(GET_MEDIA, (origin, media_id)))


async def get_media_tx(tx: Transaction, origin: str, media_id: str) -> MediaRecord | None:
    return _media(await tx.fetchone(GET_MEDIA, (origin, media_id)))


async def insert_media(tx: Transaction, m: MediaRecord) -> None:
    await tx.execute(INSERT_MEDIA, (m.origin, m.media_id, m.user_id, m.content_hash, m.media_type,
                                    m.upload_name, m.media_length, m.created_ts, m.uploaded_ts,
                                    m.unused_expires_ts, int(m.authenticated)))


async def set_uploaded_content(tx: Transaction, origin: str, media_id: str, content_hash: str,
                               media_type: str, upload_name: str | None, media_length: int,
                               uploaded_ts: int) -> bool:
    """Fill a pending ID; False when it already has content (or is gone)."""
    cur = await tx.execute(SET_UPLOADED_CONTENT, (content_hash, media_type, upload_name, media_length,
                                                  uploaded_ts, origin, media_id))
    return cur.rowcount == 1


async def get_user_usage(db: Database | Transaction, user_id: str) -> int:
    """Bytes of media the user has uploaded (each upload counted, even if the bytes are shared)."""
    row = await db.fetchone(GET_USER_USAGE, (user_id,))
    return int(row[0]) if row else 0


async def get_pending(tx: Transaction, user_id: str, now_ts: int) -> tuple[int, int | None]:
    """How many created IDs the user has not yet uploaded to, and the earliest expiry among them."""
    row = await tx.fetchone(GET_PENDING, (user_id, now_ts))
    return (int(row[0]), row[1]) if row else (0, None)


def has_expired_pending(db: Database, now_ts: int) -> bool:
    """Whether a pending media ID has expired (read on the loop: media_by_hash holds the pending
    ones under NULL, so this touches a page or two)."""
    return db.lookup(ANY_EXPIRED_PENDING, (now_ts,)) is not None


async def delete_expired_pending(tx: Transaction, now_ts: int) -> int:
    cur = await tx.execute(DELETE_EXPIRED_PENDING, (now_ts,))
    return cur.rowcount


async def set_last_access(tx: Transaction, rows: Iterable[tuple[str, str, int]]) -> None:
    await tx.executemany(SET_LAST_ACCESS, [(ts, origin, media_id) for origin, media_id, ts in rows])


async def delete_media_unused_since(tx: Transaction, before_ts: int, server_name: str, *,
                                    local: bool, remote: bool) -> tuple[int, set[str]]:
    """Delete media last used before `before_ts`; returns the count and the hashes left unused.

    Thumbnail rows of those hashes go too; their files are the caller's to delete after commit.
    """
    rows = await tx.fetchall(SELECT_UNUSED_SINCE, (before_ts, int(local), server_name,
                                                   int(remote), server_name))
    await tx.executemany("DELETE FROM media WHERE origin = ? AND media_id = ?",
                         [(r[0], r[1]) for r in rows])
    orphans = set()
    for content_hash in {r[2] for r in rows}:
        still_used = await tx.fetchone(COUNT_HASH_USERS, (content_hash,))
        if still_used is not None and int(still_used[0]) == 0:
            orphans.add(content_hash)
            await tx.execute("DELETE FROM media_thumbnails WHERE content_hash = ?", (content_hash,))
    return len(rows), orphans


async def get_referenced_hashes(db: Database) -> set[str]:
    return {r[0] for r in await db.fetchall(GET_REFERENCED_HASHES)}


async def is_hash_referenced(db: Database, content_hash: str) -> bool:
    row = await db.fetchone(COUNT_HASH_USERS, (content_hash,))
    return bool(row and int(row[0]))


async def get_thumbnail(db: Database, content_hash: str, width: int, height: int, method: str,
                        animated: bool) -> ThumbnailRecord | None:
    row = await db.fetchone(GET_THUMBNAIL, (content_hash, width, height, method, int(animated)))
    if row is None:
        return None
    return ThumbnailRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


async def insert_thumbnail(tx: Transaction, t: ThumbnailRecord, created_ts: int) -> None:
    await tx.execute(INSERT_THUMBNAIL, (t.content_hash, t.width, t.height, t.method, int(t.animated),
                                        t.thumbnail_type, t.thumbnail_length, created_ts))


_HASH = re.compile(r"[0-9a-f]{64}")
WRITE_BATCH = 1024 * 1024
# A file younger than this is never swept as unused: an identical upload may be renaming it
# into place and about to commit its row.
SWEEP_GRACE_S = 600.0


class UploadTooLarge(Exception):
    """The body passed the size limit; nothing was kept."""


def _write_and_hash(file: BinaryIO, digest: "hashlib._Hash", data: bytes) -> None:
    digest.update(data)   # hashlib releases the GIL for large buffers
    file.write(data)


def _sync_and_close(file: BinaryIO) -> None:
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ContentStore:
    """Files of media bytes and thumbnails, named only by hex SHA-256 hashes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.content_dir = root / "content"
        self.thumbnail_dir = root / "thumbnails"
        self.tmp_dir = root / "tmp"
        for d in (self.content_dir, self.thumbnail_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _checked(content_hash: str) -> str:
        if not _HASH.fullmatch(content_hash):
            raise ValueError("not a content hash")
        return content_hash

    def content_path(self, content_hash: str) -> Path:
        h = self._checked(content_hash)
        return self.content_dir / h[:2] / h[2:4] / h

    def thumbnail_path(self, content_hash: str, width: int, height: int, method: str,
                       animated: bool) -> Path:
        h = self._checked(content_hash)
        if method not in ("crop", "scale"):
            raise ValueError("not a thumbnail method")
        name = f"{int(width)}x{int(height)}-{method}{'-animated' if animated else ''}"
        return self.thumbnail_dir / h[:2] / h / name

    def new_temp_path(self) -> Path:
        return self.tmp_dir / f"part-{secrets.token_hex(16)}"

    async def receive(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
        """Write `chunks` to a temp file while hashing, then rename it to its hash's name.

        Returns (content_hash, length). At most one WRITE_BATCH of the body is in memory.
        Raises UploadTooLarge past `limit` bytes; on any failure the temp file is removed.
        """
        tmp = self.new_temp_path()
        file = await asyncio.to_thread(open, tmp, "xb")
        digest = hashlib.sha256()
        size, pending = 0, bytearray()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge()
                pending += chunk
                if len(pending) >= WRITE_BATCH:
                    data = bytes(pending)
                    pending.clear()
                    await asyncio.to_thread(_write_and_hash, file, digest, data)
            if pending:
                await asyncio.to_thread(_write_and_hash, file, digest, bytes(pending))
            await asyncio.to_thread(_sync_and_close, file)
            content_hash = digest.hexdigest()
            await asyncio.to_thread(self._place, tmp, self.content_path(content_hash))
            return content_hash, size
        except BaseException:
            file.close()
            tmp.unlink(missing_ok=True)
            raise

    def put_bytes(self, target: Path, data: bytes) -> None:
        """Write `data` to `target` atomically (temp file, sync, rename). Blocking."""
        tmp = self.new_temp_path()
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._place(tmp, target)

    @staticmethod
    def _place(tmp: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Replacing an identical file is harmless, and gives the file a fresh mtime that keeps
        # the sweeper off it until this upload's row is committed.
        os.replace(tmp, target)
        _sync_dir(target.parent)

    def sweep_temp(self, older_than_s: float) -> int:
        """Remove temp files left by uploads that never finished (a crash, a dropped client)."""
        cutoff, removed = time.time() - older_than_s, 0
        for path in self.tmp_dir.iterdir():
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def sweep_unreferenced(self, referenced: set[str], grace_s: float = SWEEP_GRACE_S) -> int:
        """Remove content files (and their thumbnails) no row names and older than `grace_s`."""
        cutoff, removed = time.time() - grace_s, 0
        for path in self.content_dir.glob("*/*/*"):
            name = path.name
            if not _HASH.fullmatch(name) or name in referenced:
                continue
            try:
                if path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            shutil.rmtree(self.thumbnail_dir / name[:2] / name, ignore_errors=True)
        for thumbs in self.thumbnail_dir.glob("*/*"):
            if _HASH.fullmatch(thumbs.name) and thumbs.name not in referenced \
                    and not self.content_path(thumbs.name).exists():
                shutil.rmtree(thumbs, ignore_errors=True)
        return removed
