"""The Server object: every long-lived service of one running homeserver, built from its config."""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from quart import current_app

from pocketserver.accounts.account import Account
from pocketserver.accounts.moderation import AccountModeration
from pocketserver.accounts.auth import Authenticator
from pocketserver.accounts.passwords import PasswordHasher
from pocketserver.accounts.profile import Profiles
from pocketserver.accounts.sessions import Sessions
from pocketserver.accounts.uia import UserInteractiveAuth
from pocketserver.config import DATA_DIR_MODE, Config
from pocketserver.push import Push
from pocketserver.push import counts as push_counts
from pocketserver.e2ee.cross_signing import CrossSigning
from pocketserver.e2ee.device_keys import DeviceKeys
from pocketserver.e2ee.device_lists import DeviceLists
from pocketserver.e2ee.one_time_keys import OneTimeKeys
from pocketserver.e2ee.to_device import ToDevice
from pocketserver.ephemeral.presence import PresenceService, PresenceSource
from pocketserver.ephemeral.receipts import Receipts, ReceiptSource
from pocketserver.ephemeral.typing import TypingService, TypingSource
from pocketserver.media.repository import MediaRepository
from pocketserver.ratelimit import RateLimiter
from pocketserver.rooms.signing import SigningKey
from pocketserver.roomserver import RoomServer
from pocketserver.roomserver.membership import Membership
from pocketserver.roomserver.reads import RoomReader
from pocketserver.server_key import load_or_create_signing_key
from pocketserver.search.indexer import SearchIndexer
from pocketserver.storage import transaction_ids
from pocketserver.storage.database import Database
from pocketserver.storage.identity import claim_server_name
from pocketserver.storage.rooms import get_all_stream_positions
from pocketserver.sync.notifier import Notifier
from pocketserver.sync.sync import SyncService

if TYPE_CHECKING:
    from pocketserver.accounts.openid import OpenIdTokens
    from pocketserver.accounts.registration import Registration
    from pocketserver.discovery.announce import Announcer
    from pocketserver.e2ee.key_backup import KeyBackup
    from pocketserver.roomserver.directory import Directory
    from pocketserver.roomserver.summary import RoomSummaries
    from pocketserver.roomserver.upgrade import Upgrades
    from pocketserver.search.search import Search
    from pocketserver.sync.sliding import SlidingSyncService

log = logging.getLogger(__name__)

# Memory goes back to the system once no request started for this long, if the resident set grew
# by RELEASE_AFTER_GROWTH_BYTES since the last release: idle clients' long-polls come back every
# 30 s and grow it by little, and releasing after each round cost more CPU than it gave back.
IDLE_SECONDS = 1.0
RELEASE_AFTER_GROWTH_BYTES = 1 << 20
# What is kept in memory and written in the background (presence, devices' last-seen times, media
# download times) is written this often, and at a clean stop, in one job that waits up to
# FLUSH_RIDE_WITHIN_S to ride along in a commit that happens anyway. Every connected client's
# /sync long-poll refreshes the last-seen times, so a shorter interval would make a server with
# idle clients sync the disk every interval, all day long.
FLUSH_INTERVAL_S = 600.0
FLUSH_RIDE_WITHIN_S = 60.0
M_ARENA_MAX = -8    # glibc's mallopt parameter number


def _glibc() -> Any:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def limit_malloc_arenas() -> None:
    """Let all threads share one glibc malloc arena instead of up to one per thread.

    Every database and executor thread would otherwise get an arena of its own, each holding on
    to its own freed memory (measured: ~1 MiB less idle RSS after a benchmark run with two arenas
    than with one per thread, the same send throughput). One arena instead of two: 0.8 MiB less
    at the benchmark's start and ~0.3 MiB less at its idle end, five interleaved hsbench runs
    each, send rate and latency within the runs' spread. The threads that allocate besides the
    event loop's are SQLite's (the readers, the writer's COMMIT) and password hashing. Only has
    an effect before those threads start.
    """
    if _LIBC is not None:
        _LIBC.mallopt(M_ARENA_MAX, 1)


def _trim_malloc_heaps() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def resident_bytes() -> int | None:
    """The process's resident set size (Linux's /proc), or None where it can't be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """One homeserver: config, database, signing key and the account services."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.data_path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
        config.media_path.mkdir(parents=True, exist_ok=True)
        self.signing_key: SigningKey = load_or_create_signing_key(config.signing_key_path,
                                                                  create=not config.database_path.exists())
        self.db = Database(config.database_path, max_batch_jobs=config.writer_max_batch_jobs)
        self.hasher = PasswordHasher(config.password_hash_opslimit, config.password_hash_memlimit_kib)
        self.auth = Authenticator(self.db)
        self.uia = UserInteractiveAuth()
        login_limit = RateLimiter(config.rc_login_per_second, config.rc_login_burst)
        failed_auth_limit = RateLimiter(config.rc_failed_auth_per_second, config.rc_failed_auth_burst)
        self.registration_limit = RateLimiter(config.rc_registration_per_second,
                                              config.rc_registration_burst)
        self.sessions = Sessions(config, self.db, self.hasher, self.auth, login_limit, failed_auth_limit)
        self.account = Account(self.db, self.hasher, self.sessions, self.uia, self.auth)
        self.moderation = AccountModeration(self.db, config.server_name)
        self.profiles = Profiles(config, self.db)
        self.roomserver = RoomServer(config, self.db, self.signing_key)
        self.membership = Membership(self.roomserver, self.profiles)
        self.profiles.add_listener(self.membership.profile_changed)
        self.account.add_deactivation_listener(self.membership.leave_all)
        self.reader = RoomReader(self.roomserver)
        self.notifier = Notifier()
        self.search_indexer = SearchIndexer(self.db)
        self.sync = SyncService(self.db, self.reader, self.notifier)
        self.push = Push(config, self.db, self.reader)
        self.roomserver.on_event_persisted = self.push.on_event_persisted  # type: ignore[method-assign]
        self.roomserver.on_event_redacted = push_counts.on_redacted  # type: ignore[method-assign]
        self.roomserver.on_joined_successor = self._carry_user_settings  # type: ignore[method-assign]
        self.device_keys = DeviceKeys(self.db, config.server_name)
        self.one_time_keys = OneTimeKeys(self.db, config.server_name)
        self.device_lists = DeviceLists(self.db)
        self.cross_signing = CrossSigning(self.db, self.account)
        self.to_device = ToDevice(self.db, config.server_name)
        self.sync.add_source(self.to_device)
        self.sync.add_source(self.device_lists)
        self.sync.add_source(self.one_time_keys)
        self.presence = PresenceService(self.db, self.notifier)
        self.typing = TypingService(self.roomserver, self.notifier, activity=self.presence.bump_active,
                                    limit=RateLimiter(config.rc_typing_per_second, config.rc_typing_burst))
        self.receipts = Receipts(self.db, self.roomserver, activity=self.presence.bump_active,
                                 on_read=self.push.on_read_receipt,
                                 limit=RateLimiter(config.rc_receipts_per_second, config.rc_receipts_burst))
        self.sync.add_source(TypingSource(self.typing))
        self.sync.add_source(ReceiptSource(self.db))
        self.sync.add_source(PresenceSource(self.db, self.presence))
        self.media = MediaRepository(config, self.db)
        self._tasks: list[asyncio.Task[None]] = []
        self.announcer: Announcer | None = None
        self.last_request_at = time.perf_counter()   # set by request_started()
        self._requests_since_release = asyncio.Event()
        self._deactivations_asked = asyncio.Event()

    async def _carry_user_settings(self, tx: Any, user_id: str, old_room_id: str, new_room_id: str,
                                   new_room_creator: str) -> None:
        """A user joined an upgraded room's successor (roomserver.upgrade.carry_user_settings)."""
        from pocketserver.roomserver.upgrade import carry_user_settings
        await carry_user_settings(self.push.rules, tx, user_id, old_room_id, new_room_id, new_room_creator)

    # Services that few requests use are built, and their modules imported, on first use: each
    # module left out of start-up saves its import (~0.5 ms per frozen dataclass it defines).

    @cached_property
    def registration(self) -> Registration:
        from pocketserver.accounts.registration import Registration
        return Registration(self.config, self.db, self.hasher, self.sessions, self.uia, self.registration_limit)

    @cached_property
    def openid_tokens(self) -> OpenIdTokens:
        from pocketserver.accounts.openid import OpenIdTokens
        return OpenIdTokens(self.signing_key.seed)

    @cached_property
    def directory(self) -> Directory:
        from pocketserver.roomserver.directory import Directory
        return Directory(self.roomserver)

    @cached_property
    def room_summaries(self) -> RoomSummaries:
        from pocketserver.roomserver.summary import RoomSummaries
        return RoomSummaries(self.roomserver)

    @cached_property
    def search(self) -> Search:
        from pocketserver.search.search import Search
        return Search(self.reader, self.search_indexer)

    @cached_property
    def upgrades(self) -> Upgrades:
        from pocketserver.roomserver.upgrade import Upgrades
        return Upgrades()

    @cached_property
    def key_backup(self) -> KeyBackup:
        from pocketserver.e2ee.key_backup import KeyBackup
        return KeyBackup(self.db)

    @cached_property
    def sliding_sync(self) -> SlidingSyncService:
        from pocketserver.sync.sliding import SlidingSyncService
        from pocketserver.sync.sliding_extensions import SlidingExtensions
        return SlidingSyncService(self.reader, self.notifier, self.sync, SlidingExtensions(
            self.db, typing=TypingSource(self.typing), receipts=ReceiptSource(self.db),
            e2ee=(self.device_lists, self.one_time_keys), push_rules=self.push.rules))

    async def start(self) -> None:
        """Open the database and start the background tasks; on a failure, undo both and raise
        (an open database's threads would otherwise keep the process alive, serving nothing)."""
        try:
            await self._start()
        except BaseException:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            await self.db.close()
            raise

    async def _start(self) -> None:
        await self.db.open()
        await claim_server_name(self.db, self.config.server_name)
        self.db.writer.add_listener(self.notifier.on_commit)
        self.db.writer.add_listener(self.search_indexer.on_commit)
        # The start-up reads share the reader pool instead of waiting for each other (~1 ms);
        # stream positions only ever move forward (set_positions and advance take the maximum),
        # so their order does not matter.
        positions, _, _ = await asyncio.gather(get_all_stream_positions(self.db), self.push.start(),
                                               self.presence.load())
        self.notifier.set_positions(positions)
        self._tasks.append(asyncio.create_task(self.search_indexer.run(), name="search-indexer"))
        self._tasks.append(asyncio.create_task(self._write_kept_in_memory_every_interval(), name="flush"))
        self._tasks.append(asyncio.create_task(self.media.run_maintenance(), name="media-maintenance"))
        # Added here rather than in __init__ so it runs after every other source: unread counts go
        # on each joined room entry, including entries other sources (receipts) created.
        self.sync.add_source(self.push)
        self._tasks.append(asyncio.create_task(self.push.pushers.run(), name="pushers"))
        self._tasks.append(asyncio.create_task(self.presence.run(), name="presence"))
        self._tasks.append(asyncio.create_task(self._release_memory_when_idle(), name="idle-memory"))
        self._deactivations_asked.set()     # any left unfinished (a command's signal before a crash)
        self._tasks.append(asyncio.create_task(self._finish_deactivations_when_asked(), name="deactivations"))
        if self.config.lan_discovery:
            try:   # the homeserver works without LAN discovery, so a failure here is only logged
                from pocketserver.discovery.announce import Announcer
                self.announcer = Announcer(self.config, bytes(self.signing_key.verify_key))
                self.announcer.start()
            except Exception:
                log.warning("LAN discovery could not start; serving without it", exc_info=True)

    def finish_deactivations_soon(self) -> None:
        """`user deactivate` ran while this server holds the data directory (serving_lock): the
        accounts it deactivated leave their rooms here, where the rooms' state is kept."""
        self._deactivations_asked.set()

    async def _finish_deactivations_when_asked(self) -> None:
        while True:
            await self._deactivations_asked.wait()
            self._deactivations_asked.clear()
            try:
                await self.account.finish_deactivations()
            except Exception:
                log.exception("taking deactivated accounts out of their rooms failed")

    def request_started(self) -> float:
        """Called by the app as each request starts; returns the time it started."""
        self.last_request_at = now = time.perf_counter()
        self._requests_since_release.set()
        return now

    async def _release_memory_when_idle(self) -> None:
        """Once per idle spell, drop SQLite's page caches and give free heap pages back to the system.

        Measured after a benchmark run: ~3 MiB less idle RSS (SQLite held ~2.9 MiB, ~0.7 after),
        for ~1-2 ms of work when the server has nothing else to do; a busy server never runs it.
        Between a release and the next request the task sleeps without a timer: an idle server
        wakes for nothing. A spell after which the resident set is within
        RELEASE_AFTER_GROWTH_BYTES of what the last release left is skipped: with 4 clients
        long-polling, the server's CPU time went 13.5 → 7.8 s an hour and its threads' context
        switches 3,500 → 600 (bench/idle_clients.py), with hsbench's idle RSS unchanged.
        """
        left = None     # the resident set just after the last release
        while True:
            await self._requests_since_release.wait()
            while (wait := self.last_request_at + IDLE_SECONDS - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            self._requests_since_release.clear()
            if left is not None and (now := resident_bytes()) is not None and now - left < RELEASE_AFTER_GROWTH_BYTES:
                continue
            started = time.perf_counter()
            try:
                await self.db.release_memory()
            except Exception:
                log.warning("releasing the database's memory failed", exc_info=True)
            _trim_malloc_heaps()
            left = resident_bytes()
            log.debug("idle: memory released in %.1f ms", (time.perf_counter() - started) * 1000)

    async def write_kept_in_memory(self, *, within: float = 0.0) -> None:
        """Write presence, last-seen times and media download times: one commit for the three."""
        results = await asyncio.gather(self.auth.flush_last_seen(within=within), self.presence.flush(within=within),
                                       self.media.flush_access(within=within), return_exceptions=True)
        for name, result in zip(("last-seen times", "presence", "media download times"), results):
            if isinstance(result, Exception):
                log.error("writing %s failed", name, exc_info=result)

    async def forget_old_transaction_ids(self, *, within: float = 0.0) -> int:
        """Delete the transaction IDs older than a day (storage.transaction_ids), riding along in a
        commit within `within` s; returns how many. A server with none that old writes nothing."""
        now = int(time.time() * 1000)
        if not await transaction_ids.has_old(self.db, now):
            return 0
        deleted = await self.db.write_along(lambda tx: transaction_ids.delete_old(tx, now), within=within)
        log.debug("forgot %d transaction IDs older than a day", deleted)
        return deleted

    async def _write_kept_in_memory_every_interval(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.write_kept_in_memory(within=FLUSH_RIDE_WITHIN_S)
            try:
                await self.forget_old_transaction_ids(within=FLUSH_RIDE_WITHIN_S)
            except Exception:
                log.exception("forgetting old transaction IDs failed")
            try:
                await self.push.forget_old_notifications(within=FLUSH_RIDE_WITHIN_S)
            except Exception:
                log.exception("forgetting old notifications failed")

    def begin_stopping(self) -> None:
        """The process is stopping: end the long-polls, so the wait for requests in flight is short."""
        self.notifier.close()

    async def stop(self) -> None:
        """Stop background tasks, write what is kept in memory, drain the writer, close."""
        if self.announcer is not None:   # withdraw the LAN announcement first: we are going away
            await self.announcer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.push.close()
        self.typing.stop()
        await self.write_kept_in_memory()      # in the writer's last batch, then drain it
        await self.db.close()
        wal = self.config.database_path.with_name(self.config.database_path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            # Nothing is lost (the next start reads it), but the .db file alone is not a full copy.
            log.warning("%s was not folded into %s as the server stopped (a full disk, or a command still "
                        "had the database open): keep the two together", wal.name, self.config.database_path.name)


def current_server() -> Server:
    """The Server of the app handling the current request."""
    return current_app.config["POCKETSERVER"]
