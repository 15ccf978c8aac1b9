"""The media repository: uploads, created IDs, lookups for download, thumbnails and retention.

Spec: client-server-api, "Content repository".
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, NamedTuple

from pocketserver.config import Config
from pocketserver.errors import BadRequest, Forbidden, LimitExceeded, NotFound, TooLarge, Unrecognized
from pocketserver.media import CannotOverwriteMedia, NotYetUploaded, check_media_address, mxc_uri, \
    new_media_id
from pocketserver.media import thumbnails
from pocketserver.media.serving import base_media_type
from pocketserver.ratelimit import RateLimiter
from pocketserver.storage import media as store
from pocketserver.storage.database import Database
from pocketserver.storage.media import ContentStore, MediaRecord, ThumbnailRecord, UploadTooLarge

log = logging.getLogger(__name__)

# Spec: createContent recommends 24 hours; Synapse allows 5 pending IDs per user.
UNUSED_EXPIRES_MS = 24 * 3600 * 1000
MAX_PENDING_UPLOADS = 5
# Spec: the timeout_ms parameter defaults to 20 s and "SHOULD" have a maximum (Synapse: 60 s).
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
MAX_UPLOAD_NAME = 1000
# Expired pending IDs are refused when used, so deleting their rows is housekeeping: every 10
# minutes, not every minute, keeps an idle server's CPU asleep.
MAINTENANCE_INTERVAL_S = 600.0
RETENTION_INTERVAL_S = 3600.0
THUMBNAIL_THREADS = 2
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


class ServedThumbnail(NamedTuple):
    path: Path
    content_type: str


class MediaRepository:
    """Local media on disk and in the database; remote media is refused while federation is off."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.server_name = config.server_name
        self.files = ContentStore(config.media_path)
        self.upload_limiter = RateLimiter(config.rc_media_upload_per_second, config.rc_media_upload_burst)
        self._waiters: dict[tuple[str, str], list[Any]] = {}
        self._thumbnail_locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self._thumbnail_slots: asyncio.Semaphore | None = None
        self._accessed: dict[tuple[str, str], int] = {}
        self.previewer: Any = None
        if config.url_preview_enabled:
            from pocketserver.media.preview import UrlPreviewer   # aiohttp only when previews are on
            self.previewer = UrlPreviewer(self._save_preview_image)

    def media_config(self) -> dict[str, Any]:
        """Spec: getConfigAuthed."""
        return {"m.upload.size": self.config.max_upload_size}

    # ---- uploads ------------------------------------------------------------------------

    def _check_upload_request(self, content_length: int | None, upload_name: str | None) -> None:
        if content_length is not None and content_length > self.config.max_upload_size:
            raise TooLarge("Upload request body is too large")
        if upload_name is not None and len(upload_name) > MAX_UPLOAD_NAME:
            raise BadRequest("filename is too long")

    async def _check_quota(self, db: Database | Any, user_id: str, extra: int) -> None:
        quota = self.config.media_quota_per_user_bytes
        # Spec: uploadContent, 403: "The user has reached a quota for uploaded content."
        if quota and await store.get_user_usage(db, user_id) + extra > quota:
            raise Forbidden("Media upload quota exceeded")

    async def _receive(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        try:
            return await self.files.receive(chunks, self.config.max_upload_size)
        except UploadTooLarge:
            raise TooLarge("Upload request body is too large") from None
        except TimeoutError:
            raise BadRequest("Timed out reading the upload") from None

    async def upload(self, user_id: str, chunks: AsyncIterator[bytes], *, content_length: int | None,
                     media_type: str | None, upload_name: str | None) -> str:
        """Store an upload and return its mxc:// URI. Spec: uploadContent."""
        self._check_upload_request(content_length, upload_name)
        self.upload_limiter.spend(user_id)
        await self._check_quota(self.db, user_id, content_length or 0)
        content_hash, length = await self._receive(chunks)
        media_id, now = new_media_id(), now_ms()
        record = MediaRecord(self.server_name, media_id, user_id, content_hash, clean_media_type(media_type),
                             upload_name or None, length, now, now, None,
                             self.config.freeze_unauthenticated_media)

        async def job(tx: Any) -> None:
            await self._check_quota(tx, user_id, length)   # again: concurrent uploads of one user
            await store.insert_media(tx, record)
        await self.db.write(job)
        return mxc_uri(self.server_name, media_id)

    async def create(self, user_id: str) -> dict[str, Any]:
        """Reserve an mxc:// URI to upload to later. Spec: createContent."""
        self.upload_limiter.spend(user_id)
        media_id, now = new_media_id(), now_ms()
        expires = now + UNUSED_EXPIRES_MS

        async def job(tx: Any) -> None:
            pending, earliest = await store.get_pending(tx, user_id, now)
            if pending >= MAX_PENDING_UPLOADS:
                raise LimitExceeded("You have too many uploads pending. Finish uploading your existing files.",
                                    retry_after_ms=max(1, (earliest or now) - now))
            await store.insert_media(tx, MediaRecord(self.server_name, media_id, user_id, None, None, None,
                                                     None, now, None, expires,
                                                     self.config.freeze_unauthenticated_media))
        await self.db.write(job)
        return {"content_uri": mxc_uri(self.server_name, media_id), "unused_expires_at": expires}

    async def upload_to(self, user_id: str, server_name: str, media_id: str, chunks: AsyncIterator[bytes], *,
                        content_length: int | None, media_type: str | None, upload_name: str | None) -> None:
        """Fill a created mxc:// URI with content. Spec: uploadContentToMXC."""
        check_media_address(server_name, media_id)
        record = await store.get_media(self.db, server_name, media_id) if server_name == self.server_name else None
        if record is None:
            raise NotFound("Unknown media ID")
        if record.user_id != user_id:
            raise Forbidden("Only the creator of the media ID can upload to it")
        if record.content_hash is not None:
            raise CannotOverwriteMedia("Media ID already has content")
        if (record.unused_expires_ts or 0) <= now_ms():
            raise NotFound("Media ID has expired")
        self._check_upload_request(content_length, upload_name)
        await self._check_quota(self.db, user_id, content_length or 0)
        content_hash, length = await self._receive(chunks)

        async def job(tx: Any) -> None:
            await self._check_quota(tx, user_id, length)
            if not await store.set_uploaded_content(tx, server_name, media_id, content_hash,
                                                    clean_media_type(media_type), upload_name or None,
                                                    length, now_ms()):
                raise CannotOverwriteMedia("Media ID already has content")
        await self.db.write(job)
        self._wake((server_name, media_id))

    # ---- downloads ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _waiting(self, key: tuple[str, str]) -> Iterator[asyncio.Event]:
        entry = self._waiters.get(key)
        if entry is None:
            entry = self._waiters[key] = [asyncio.Event(), 0]
        entry[1] += 1
        try:
            yield entry[0]
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._waiters.get(key) is entry:
                del self._waiters[key]

    def _wake(self, key: tuple[str, str]) -> None:
        entry = self._waiters.pop(key, None)
        if entry is not None:
            entry[0].set()

    async def get_for_download(self, server_name: str, media_id: str, *, legacy: bool,
                               timeout_ms: int = DEFAULT_TIMEOUT_MS) -> MediaRecord:
        """The uploaded media at this address, waiting up to timeout_ms for a pending upload.

        Spec: getContentAuthed ("timeout_ms", 504 M_NOT_YET_UPLOADED) and getContent (the freeze).
        """
        check_media_address(server_name, media_id)
        if server_name != self.server_name:
            raise NotFound("Remote media is not available: this server does not federate")
        key = (server_name, media_id)
        record = await store.get_media(self.db, *key)
        if record is not None and record.content_hash is None:
            with self._waiting(key) as uploaded:
                # Re-read after registering, so an upload committed in between is not missed.
                record = await store.get_media(self.db, *key)
                if record is not None and record.content_hash is None and not (legacy and record.authenticated):
                    if (record.unused_expires_ts or 0) <= now_ms():
                        raise NotFound("Media ID has expired")
                    timeout = min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(uploaded.wait(), timeout)
                    record = await store.get_media(self.db, *key)
        if record is None or (legacy and record.authenticated):
            # Spec: "Client behaviour": media uploaded after the freeze is only on /_matrix/client/v1.
            raise NotFound("Not found")
        if record.content_hash is None:
            raise NotYetUploaded("Content has not yet been uploaded")
        self._accessed[key] = now_ms()
        return record

    def content_path(self, record: MediaRecord) -> Path:
        assert record.content_hash is not None
        return self.files.content_path(record.content_hash)

    # ---- thumbnails ---------------------------------------------------------------------

    async def thumbnail(self, record: MediaRecord, width: int, height: int, method: str,
                        animated: bool) -> ServedThumbnail:
        """A thumbnail of `record`, made on first request in a thread and kept on disk and in the DB.

        Spec: getContentThumbnailAuthed, "Thumbnails".
        """
        assert record.content_hash is not None
        if base_media_type(record.media_type) not in thumbnails.THUMBNAILABLE_TYPES:
            raise BadRequest("Cannot generate thumbnails for the requested content")
        w, h, m = thumbnails.choose_thumbnail_size(width, height, method)
        key = (record.content_hash, w, h, m, animated)
        served = await self._cached_thumbnail(*key)
        if served:
            return served
        lock = self._thumbnail_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                served = await self._cached_thumbnail(*key)
                if served:
                    return served
                return await self._make_thumbnail(record.content_hash, w, h, m, animated)
        finally:
            if not lock.locked() and self._thumbnail_locks.get(key) is lock:
                del self._thumbnail_locks[key]

    async def _cached_thumbnail(self, content_hash: str, w: int, h: int, m: str,
                                animated: bool) -> ServedThumbnail | None:
        row = await store.get_thumbnail(self.db, content_hash, w, h, m, animated)
        if row is None:
            return None
        path = self.files.thumbnail_path(content_hash, w, h, m, animated)
        return ServedThumbnail(path, row.thumbnail_type) if path.exists() else None

    async def _make_thumbnail(self, content_hash: str, w: int, h: int, m: str, animated: bool) -> ServedThumbnail:
        source = self.files.content_path(content_hash)
        target = self.files.thumbnail_path(content_hash, w, h, m, animated)

        def make_and_write() -> thumbnails.Thumbnail:
            made = thumbnails.make_thumbnail(source, w, h, m, animated)
            if not made.original:
                self.files.put_bytes(target, made.data)
            return made

        if self._thumbnail_slots is None:
            self._thumbnail_slots = asyncio.Semaphore(THUMBNAIL_THREADS)
        try:
            async with self._thumbnail_slots:
                made = await asyncio.to_thread(make_and_write)
        except thumbnails.ImageTooLarge:
            raise TooLarge("Content is too large to thumbnail") from None
        except thumbnails.CannotThumbnail:
            raise BadRequest("Cannot generate thumbnails for the requested content") from None
        if made.original:
            return ServedThumbnail(source, made.content_type)
        row = ThumbnailRecord(content_hash, w, h, m, animated, made.content_type, len(made.data))
        await self.db.write(lambda tx: store.insert_thumbnail(tx, row, now_ms()))
        return ServedThumbnail(target, made.content_type)

    # ---- URL previews -------------------------------------------------------------------

    async def preview_url(self, url: str) -> dict[str, Any]:
        """Open Graph data of `url`, its image stored as local media. Spec: getUrlPreviewAuthed."""
        if self.previewer is None:
            # Synapse registers no preview route when previews are off.
            raise Unrecognized("Unrecognized request")
        return await self.previewer.preview(url)

    async def _save_preview_image(self, data: bytes, media_type: str, upload_name: str | None) -> str:
        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        content_hash, length = await self.files.receive(one_chunk(), len(data))
        media_id, now = new_media_id(), now_ms()
        record = MediaRecord(self.server_name, media_id, None, content_hash, clean_media_type(media_type),
                             upload_name, length, now, now, None, self.config.freeze_unauthenticated_media)
        await self.db.write(lambda tx: store.insert_media(tx, record))
        return mxc_uri(self.server_name, media_id)

    # ---- retention and housekeeping -----------------------------------------------------

    async def flush_access(self, *, within: float = 0.0) -> None:
        """Write remembered download times in one job (not one write per download).

        The server writes them with what else is kept in memory (Server.FLUSH_INTERVAL_S), and a
        purge first. `within`: the job may wait that long for a commit to ride along in.
        """
        if not self._accessed:
            return
        taken, self._accessed = self._accessed, {}
        rows = [(origin, media_id, ts) for (origin, media_id), ts in taken.items()]
        try:
            await self.db.write_along(lambda tx: store.set_last_access(tx, rows), within=within)
        except Exception:
            for key, ts in taken.items():        # kept for the next flush, unless downloaded since
                self._accessed.setdefault(key, ts)
            raise

    async def purge(self, older_than_days: int, *, local: bool = True, remote: bool = True) -> tuple[int, int]:
        """Delete media not downloaded (or uploaded) for `older_than_days`; returns (media, files)."""
        await self.flush_access()
        cutoff = now_ms() - older_than_days * DAY_MS
        deleted, _ = await self.db.write(lambda tx: store.delete_media_unused_since(
            tx, cutoff, self.server_name, local=local, remote=remote))
        referenced = await store.get_referenced_hashes(self.db)
        files = await asyncio.to_thread(self.files.sweep_unreferenced, referenced)
        return deleted, files

    async def run_maintenance(self) -> None:
        """Background task: drop stale temp files and expired IDs, retention."""
        # The server just started: every temp file is from an upload that died with a process.
        await asyncio.to_thread(self.files.sweep_temp, 0)
        last_retention = 0.0
        while True:
            try:
                now = now_ms()
                if store.has_expired_pending(self.db, now):   # else the writer's thread sleeps on
                    await self.db.write(lambda tx: store.delete_expired_pending(tx, now))
                if time.monotonic() - last_retention >= RETENTION_INTERVAL_S:
                    last_retention = time.monotonic()
                    await self._apply_retention()
            except Exception:
                log.exception("media maintenance failed")
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)

    async def _apply_retention(self) -> None:
        local_days, remote_days = self.config.media_retention_local_days, self.config.media_retention_remote_days
        if local_days:
            deleted, files = await self.purge(local_days, local=True, remote=False)
            log.info("media retention: deleted %d local media, %d files", deleted, files)
        if remote_days:
            deleted, files = await self.purge(remote_days, local=False, remote=True)
            log.info("media retention: deleted %d remote media, %d files", deleted, files)
        await asyncio.to_thread(self.files.sweep_temp, 86_400)

    async def run_purge_command(self, args: Any) -> int:
        """`pocketserver media purge --older-than DAYS [--local|--remote]`."""
        if not 0 <= args.older_than <= 100 * 365:
            print("error: --older-than must be between 0 and 36500 days")
            return 2
        local, remote = (args.local or not args.remote), (args.remote or not args.local)
        deleted, files = await self.purge(args.older_than, local=local, remote=remote)
        print(f"deleted {deleted} media not used for {args.older_than} days; removed {files} files")
        return 0


def clean_media_type(media_type: str | None) -> str:
    """The upload's Content-Type as stored: printable ASCII, bounded, else application/octet-stream."""
    value = (media_type or "").strip()
    if not value or len(value) > 255 or not value.isascii() or not value.isprintable() or "/" not in value:
        return "application/octet-stream"
    return value
