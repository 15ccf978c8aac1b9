"""Pushers and their delivery queue: persisted, retried with exponential backoff, rejected pushkeys removed.

Notifications are queued inside the write job that persists the event; a background task sends
them after the commit, so no network I/O ever happens inside a write job.
Spec: client-server-api, "Client behaviour" (pushers); push-gateway-api, "POST /_matrix/push/v1/notify".
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from pocketserver.errors import InvalidParam, MissingParam
from pocketserver.push.counts import UNTHREADED
from pocketserver.push.gateway import Gateway, GatewayError, is_valid_notify_url
from pocketserver.storage import events as event_store
from pocketserver.storage import push as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Changes, Transaction

log = logging.getLogger(__name__)
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64
MAX_FIELD_CHARS = 1024
BATCH = 100
PARALLEL_SENDS = 8
# Fields of a queued notification that an event_id_only pusher may receive (spec: push-gateway-api).
EVENT_ID_ONLY_FIELDS = ("event_id", "room_id", "counts", "prio")
# A queued notification's [stream ordering, thread] of its event, for the check at send time that
# the user has not read it meanwhile; never sent to the gateway.
READ_CHECK = "read_check"


def now_ms() -> int:
    return int(time.time() * 1000)


class Pusher(NamedTuple):
    id: int
    user_id: str
    device_id: str | None
    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: Mapping[str, Any]
    pushkey_ts: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "Pusher":
        return cls(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                   json.loads(row[10]), int(row[11]))

    def to_json(self) -> dict[str, Any]:
        """Spec: "GET /_matrix/client/v3/pushers" (Pusher)."""
        body: dict[str, Any] = {"pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
                                "app_display_name": self.app_display_name,
                                "device_display_name": self.device_display_name, "lang": self.lang,
                                "data": dict(self.data)}
        if self.profile_tag is not None:
            body["profile_tag"] = self.profile_tag
        return body

    @property
    def event_id_only(self) -> bool:
        return self.data.get("format") == "event_id_only"


class PusherRequest(NamedTuple):
    """A validated POST /pushers/set body; `kind` None means delete."""

    kind: str | None
    app_id: str
    pushkey: str
    app_display_name: str = ""
    device_display_name: str = ""
    profile_tag: str | None = None
    lang: str = ""
    data: Mapping[str, Any] | None = None
    append: bool = False


def parse_pusher_request(body: Mapping[str, Any]) -> PusherRequest:
    """Validate a pushers/set body. Spec: "POST /_matrix/client/v3/pushers/set"."""
    missing = [k for k in ("kind", "app_id", "pushkey") if k not in body]
    if missing:
        raise MissingParam("Missing parameters: " + ", ".join(missing))
    app_id, pushkey, kind = body["app_id"], body["pushkey"], body["kind"]
    if not isinstance(app_id, str) or not app_id or len(app_id) > MAX_APP_ID_CHARS:
        raise InvalidParam("app_id must be a string of at most 64 characters")
    if not isinstance(pushkey, str) or not pushkey or len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise InvalidParam("pushkey must be a string of at most 512 bytes")
    if kind is None:
        return PusherRequest(None, app_id, pushkey)
    if kind != "http":
        raise InvalidParam(f"Unsupported pusher kind {kind!r}" if isinstance(kind, str) else "kind must be a string")
    missing = [k for k in ("app_display_name", "device_display_name", "lang", "data") if k not in body]
    if missing:
        raise MissingParam("Missing parameters: " + ", ".join(missing))
    for name in ("app_display_name", "device_display_name", "lang"):
        if not isinstance(body[name], str) or len(body[name]) > MAX_FIELD_CHARS:
            raise InvalidParam(f"{name} must be a string")
    profile_tag = body.get("profile_tag")
    if profile_tag is not None and (not isinstance(profile_tag, str) or len(profile_tag) > MAX_FIELD_CHARS):
        raise InvalidParam("profile_tag must be a string")
    data = body["data"]
    if not isinstance(data, dict):
        raise InvalidParam("data must be an object")
    if "url" not in data:
        raise MissingParam("data.url is required for http pushers")
    if not is_valid_notify_url(data["url"]):
        raise InvalidParam("data.url must be an http(s) URL with the path /_matrix/push/v1/notify")
    if "format" in data and not isinstance(data["format"], str):
        raise InvalidParam("data.format must be a string")
    append = body.get("append", False)
    if not isinstance(append, bool):
        raise InvalidParam("append must be a boolean")
    return PusherRequest(kind, app_id, pushkey, body["app_display_name"], body["device_display_name"], profile_tag,
                         body["lang"], data, append)


def build_notify_body(pusher: Pusher, queued: Mapping[str, Any], event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `notification` object for one pusher; event_id_only pushers get no event content or names.

    Spec: push-gateway-api, "POST /_matrix/push/v1/notify"; client-server-api, "pushers/set" (`data`).
    """
    device: dict[str, Any] = {"app_id": pusher.app_id, "pushkey": pusher.pushkey,
                              "pushkey_ts": pusher.pushkey_ts // 1000,
                              "data": {k: v for k, v in pusher.data.items() if k != "url"},
                              "tweaks": dict(queued.get("tweaks", {}))}
    if pusher.event_id_only:
        notification = {k: queued[k] for k in EVENT_ID_ONLY_FIELDS if k in queued}
    else:
        notification = {k: v for k, v in queued.items() if k not in ("tweaks", READ_CHECK)}
        if event is not None:
            notification["type"] = event.get("type")
            notification["sender"] = event.get("sender")
            content = event.get("content")
            if isinstance(content, dict) and content:
                notification["content"] = content
            if event.get("type") == "m.room.member" and "state_key" in event:
                notification["user_is_target"] = event.get("state_key") == pusher.user_id
                if isinstance(content, dict) and isinstance(content.get("membership"), str):
                    notification["membership"] = content["membership"]
    notification["devices"] = [device]
    return notification


class Pushers:
    """Stores pushers (cached in memory) and delivers queued notifications to their gateways."""

    def __init__(self, db: Database, gateway: Gateway | None = None) -> None:
        self.db = db
        self.gateway = gateway or Gateway()
        self._by_user: dict[str, list[Pusher]] = {}
        self._wake = asyncio.Event()
        self._queued = False
        self.updated = asyncio.Event()     # set whenever the in-memory pushers change (tests wait on it)
        # Backoff: base * 2**attempts, capped; a notification is dropped after give_up_ms. A pusher
        # backs off as a whole (its queue keeps its order), until the time kept here.
        self._backing_off: dict[int, int] = {}
        self.backoff_base_ms = 1000
        self.backoff_max_ms = 60 * 60 * 1000
        self.give_up_ms = 24 * 60 * 60 * 1000

    async def load(self) -> None:
        """Read every pusher into memory (a small server has few)."""
        self._by_user.clear()
        for row in await store.get_all_pushers(self.db):
            pusher = Pusher.from_row(row)
            self._by_user.setdefault(pusher.user_id, []).append(pusher)
        # Pushers backing off when the server stopped still are: what they are sent next waits behind
        # what they were not sent yet.
        now = now_ms()
        self._backing_off = {pusher_id: until for pusher_id, until in (await store.get_pusher_backoffs(self.db)).items()
                             if until > now}

    def for_user(self, user_id: str) -> list[Pusher]:
        return self._by_user.get(user_id, [])

    def _reload_users(self, user_ids: set[str]) -> None:
        for user_id in user_ids:
            pushers = [Pusher.from_row(r) for r in store.get_pushers_for_user(self.db, user_id)]
            if pushers:
                self._by_user[user_id] = pushers
            else:
                self._by_user.pop(user_id, None)
        self.updated.set()

    async def set_pusher(self, user_id: str, device_id: str | None, req: PusherRequest) -> None:
        """Create, update or (kind null) delete one of the user's pushers.

        Spec: client-server-api, "POST /_matrix/client/v3/pushers/set".
        """
        async def job(tx: Transaction) -> set[str]:
            touched = {user_id}
            if req.kind is None:
                await store.delete_pushers(tx, req.app_id, req.pushkey, user_id=user_id)
                return touched
            assert req.data is not None
            await store.upsert_pusher(tx, user_id=user_id, device_id=device_id, kind=req.kind, app_id=req.app_id,
                                      pushkey=req.pushkey, app_display_name=req.app_display_name,
                                      device_display_name=req.device_display_name, profile_tag=req.profile_tag,
                                      lang=req.lang, data=dict(req.data), pushkey_ts=now_ms())
            if not req.append:
                touched |= set(await store.delete_pushers(tx, req.app_id, req.pushkey, other_than_user=user_id))
            return touched

        self._reload_users(await self.db.write(job))

    async def enqueue(self, tx: Transaction, user_id: str, notification: dict[str, Any]) -> None:
        """Queue `notification` for each of the user's pushers, inside the caller's write job."""
        now = now_ms()
        for pusher in self.for_user(user_id):
            await store.enqueue_push(tx, pusher.id, notification, now, self._backing_off.get(pusher.id))
            self._queued = True

    def on_commit(self, changes: Changes) -> None:
        """Writer listener: wake the delivery task once queued notifications are committed, and
        re-read the pushers of users with pushers whose account changed (a device may be gone).

        The re-read is synchronous, so the request that logged a device out answers only after its
        pushers are gone from memory too."""
        if self._queued:
            self._queued = False
            self._wake.set()
        stale = {u for u in changes.users if u in self._by_user}
        if stale:
            self._reload_users(stale)

    async def run(self) -> None:
        """The delivery task: send what is due, then sleep until the next retry or a new commit."""
        while True:
            self._wake.clear()
            try:
                next_due = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery failed; retrying in a minute")
                next_due = now_ms() + 60_000
            delay = None if next_due is None else max(0.0, (next_due - now_ms()) / 1000)
            if delay == 0:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def deliver_due(self) -> int | None:
        """Send every queued notification that is due; returns when the next one will be (ms), if any."""
        while True:
            due = await store.get_due_pushes(self.db, now_ms(), BATCH)
            if not due:
                return await store.get_next_push_due(self.db)
            await self._deliver(due)

    async def _deliver(self, due: list[store.QueuedPush]) -> None:
        """Send what is due, each pusher's notifications in order, one at a time.

        As Synapse's HTTP pusher: a gateway that fails backs the pusher off as a whole (its later
        notifications wait behind the failed one, nothing hammers a gateway that is down); a
        notification the user has read meanwhile is not sent (no phone rings for it after an
        outage); and the badge is the user's unread count as the push is sent, not as it was
        queued. Spec: push-gateway-api, "POST /_matrix/push/v1/notify" (`counts.unread`).
        """
        pushers = {p.id: p for ps in self._by_user.values() for p in ps}
        queues: dict[int, list[store.QueuedPush]] = {}
        for queued in due:                                   # `due` is in queue order
            queues.setdefault(queued.pusher_id, []).append(queued)
        done = [q.id for pusher_id, queue in queues.items() if pusher_id not in pushers for q in queue]
        queues = {pusher_id: queue for pusher_id, queue in queues.items() if pusher_id in pushers}
        users = {pushers[pusher_id].user_id for pusher_id in queues}
        badges = {user_id: await store.get_badge_count(self.db, user_id) for user_id in users}
        read = {user_id: await store.get_read_positions(self.db, user_id, {
            str(q.notification.get("room_id")) for pusher_id, queue in queues.items()
            if pushers[pusher_id].user_id == user_id for q in queue}) for user_id in users}
        events = await event_store.get_events(self.db, [q.notification.get("event_id", "") for q in due
                                                        if q.pusher_id in queues])
        limit = asyncio.Semaphore(PARALLEL_SENDS)
        retry: list[tuple[int, int, int]] = []
        postponed: dict[int, int] = {}
        rejected: list[Pusher] = []

        async def send_in_order(pusher: Pusher, queue: list[store.QueuedPush]) -> None:
            for queued in queue:
                if _read_meanwhile(queued.notification, read[pusher.user_id]):
                    done.append(queued.id)
                    continue
                stored = events.get(queued.notification.get("event_id", ""))
                body = build_notify_body(pusher, _with_badge(queued.notification, badges[pusher.user_id]),
                                         stored.json if stored else None)
                try:
                    async with limit:
                        refused = await self.gateway.notify(str(pusher.data["url"]), body)
                except GatewayError as exc:
                    attempts = queued.attempts + 1
                    delay = min(self.backoff_base_ms * 2 ** min(queued.attempts, 30), self.backoff_max_ms)
                    if exc.permanent or now_ms() + delay - queued.created_ms > self.give_up_ms:
                        log.warning("dropping a push to pusher %d after %d attempts: %s", pusher.id, attempts, exc)
                        done.append(queued.id)
                        continue
                    retry.append((queued.id, attempts, now_ms() + delay))
                    postponed[pusher.id] = self._backing_off[pusher.id] = now_ms() + delay
                    return
                done.append(queued.id)
                self._backing_off.pop(pusher.id, None)
                if pusher.pushkey in refused:
                    rejected.append(pusher)
                    return

        await asyncio.gather(*(send_in_order(pushers[pusher_id], queue) for pusher_id, queue in queues.items()))

        async def job(tx: Transaction) -> set[str]:
            await store.delete_pushes(tx, done)
            for push_id, attempts, at in retry:
                await store.reschedule_push(tx, push_id, attempts, at)
            for pusher_id, until in postponed.items():
                await store.postpone_pusher(tx, pusher_id, until)
            users: set[str] = set()
            for pusher in rejected:
                # Spec: push-gateway-api ("rejected"): stop sending to it and remove the pusher.
                users |= set(await store.delete_pushers(tx, pusher.app_id, pusher.pushkey, user_id=pusher.user_id))
            return users

        self._reload_users(await self.db.write(job))

    async def close(self) -> None:
        await self.gateway.close()


def _read_meanwhile(notification: Mapping[str, Any], positions: Mapping[tuple[str, str], int]) -> bool:
    """Whether the user's read receipts have passed the notification's event since it was queued
    (the unthreaded receipt, or the one of the event's thread). Spec: client-server-api,
    "Receiving notifications" (a read receipt marks notifications up to it as read)."""
    check = notification.get(READ_CHECK)
    if not (isinstance(check, list) and len(check) == 2):
        return False            # a badge-only push, or one queued before this check existed
    position, thread_id = check
    room_id = str(notification.get("room_id"))
    return position <= max(positions.get((room_id, UNTHREADED), 0), positions.get((room_id, str(thread_id)), 0))


def _with_badge(notification: Mapping[str, Any], unread: int) -> dict[str, Any]:
    """The notification with the user's unread count as of now; a badge-only push says 0 too."""
    badge_only = "event_id" not in notification
    return {**notification, "counts": {"unread": unread} if unread or badge_only else {}}
