"""Push notifications: rules evaluated as events are persisted, unread counts, notifications, pushers.

Spec: client-server-api, "Push Notifications"; push-gateway-api.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from pocketserver.config import Config
from pocketserver.errors import InvalidParam
from pocketserver.push import counts
from pocketserver.push.pushers import READ_CHECK
from pocketserver.push.evaluator import EventEvaluation, is_highlight, tweaks_for_actions
from pocketserver.push.pushers import Pushers
from pocketserver.push.rules import PushRules, build_ruleset
from pocketserver.rooms.auth_rules import auth_state_for
from pocketserver.rooms.events import Pdu
from pocketserver.roomserver.reads import RoomReader
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import events as event_store
from pocketserver.storage import push as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction
from pocketserver.sync.filters import event_matches
from pocketserver.sync.sources import SyncContext

log = logging.getLogger(__name__)
MAX_NOTIFICATIONS_PAGE = 1000
DEFAULT_NOTIFICATIONS_PAGE = 50


def now_ms() -> int:
    return int(time.time() * 1000)


class Push:
    """Evaluates push rules at persist time, keeps counts, lists notifications, feeds the pushers."""

    def __init__(self, config: Config, db: Database, reader: RoomReader) -> None:
        self.db = db
        self.reader = reader
        self.local_suffix = ":" + config.server_name
        self.rules = PushRules(db)
        self.pushers = Pushers(db)
        # A user ID no event can name (see EventEvaluation), with its default rules.
        self._template_user = f"@pocketserver-nobody-{secrets.token_hex(16)}:invalid"
        self._template_rules = build_ruleset(self._template_user, [], {}).rules
        self._notifications_looked_upto = 0   # rows up to here were looked at by forget_old_notifications

    async def start(self) -> None:
        await self.pushers.load()
        assert self.db.writer is not None
        self.db.writer.add_listener(self.pushers.on_commit)
        self.db.writer.add_listener(self.rules.after_commit)

    async def close(self) -> None:
        await self.pushers.close()

    async def forget_old_notifications(self, *, now: int | None = None, within: float = 0.0) -> int:
        """Delete the notifications older than a week that highlighted nobody (storage.push,
        KEEP_NOTIFICATIONS_MS), riding along in a commit within `within` s; returns how many.

        Each pass goes on from where the last one stopped (the mentions it kept are not read
        again); with nothing old it reads one row and writes nothing.
        """
        doomed, upto = await store.old_notifications(self.db, self._notifications_looked_upto,
                                                     now_ms() if now is None else now)
        deleted = 0
        if doomed:
            deleted = await self.db.write_along(lambda tx: store.delete_notifications(tx, doomed), within=within)
            log.debug("forgot %d notifications older than a week", deleted)
        self._notifications_looked_upto = upto
        return deleted

    async def on_event_persisted(self, tx: Transaction, room: RoomState, pdu: Pdu, stream_ordering: int) -> None:
        """Evaluate each local recipient's rules for a just-stored event (inside its write job).

        Recipients are the room's local joined members and a local invitee, never the sender.
        Spec: client-server-api, "Server behaviour" (push), "Push Rules".
        """
        joined, member_count = self._local_joined(room)
        recipients = [u for u in joined if u != pdu.sender]
        if pdu.type == "m.room.member" and pdu.content.get("membership") == "invite":
            invitee = pdu.state_key
            if invitee and invitee.endswith(self.local_suffix) and invitee != pdu.sender:
                recipients.append(invitee)
        sender_local = pdu.sender.endswith(self.local_suffix)
        if pdu.type == "m.room.member" and pdu.state_key and pdu.state_key.endswith(self.local_suffix) \
                and pdu.content.get("membership") != "join":
            await counts.on_left_room(tx, pdu.state_key, room.room_id, stream_ordering)
        if not recipients and not sender_local:
            return
        thread_id = await counts.get_thread_id(tx, pdu.content)
        if sender_local:
            await counts.on_own_event(tx, pdu.sender, room.room_id, stream_ordering, thread_id)
        if not recipients:
            return
        auth = auth_state_for(room.state, room.create, room.version)
        levels = dict(auth.power_levels.notifications)
        levels.setdefault("room", auth.power_levels.notification_level("room"))
        sender_level = auth.user_power_level(pdu.sender)
        event = dict(pdu.raw)
        event.setdefault("room_id", room.room_id)
        joined_set = set(joined)
        notified: dict[str, tuple[tuple[Any, ...], bool, bool]] = {}
        evaluation = EventEvaluation(event, self._template_user, self._template_rules, member_count=member_count,
                                     sender_power_level=sender_level, notification_levels=levels)
        highlights: dict[int, bool] = {}
        ignoring = self.reader.ignored
        is_invite = pdu.type == "m.room.member" and pdu.content.get("membership") == "invite"
        for user_id in recipients:
            # Nothing for what the user ignores: messages (as Synapse) and, since sync hides it, an
            # invite. Other state events from ignored users still count, as sync still shows them.
            if (pdu.state_key is None or (is_invite and pdu.state_key == user_id)) \
                    and pdu.sender in await ignoring.of_tx(tx, user_id):
                continue
            ruleset = self.rules.cached(user_id) or await self.rules.get_ruleset_tx(tx, user_id)
            try:
                rule = evaluation.rule_for(ruleset.rules, ruleset.defaults_only, user_id, _display_name(room, user_id))
            except Exception:  # a bug in one user's rules must never stop the event being stored
                log.exception("push rule evaluation failed for %s", user_id)
                continue
            if rule is None or "notify" not in rule.actions:
                continue
            highlight = highlights.get(id(rule))
            if highlight is None:
                highlight = highlights[id(rule)] = is_highlight(rule.actions)
            notified[user_id] = (rule.actions, highlight, user_id in joined_set)
        # One statement for every recipient's count (before the pushers read the badge count):
        # a statement each held the single writer for a round trip per member of a big room.
        await counts.add_to_unread(tx, room.room_id, thread_id, [(u, h) for u, (_, h, c) in notified.items() if c])
        for user_id, (actions, _, joined) in notified.items():
            if self.pushers.for_user(user_id):
                notification = await self._notification(tx, room, pdu, user_id, actions)
                if joined:      # what a receipt can mark read (an invitee's invite it cannot)
                    notification[READ_CHECK] = [stream_ordering, thread_id]
                await self.pushers.enqueue(tx, user_id, notification)
        await counts.record_notifications(tx, room.room_id, pdu.event_id, stream_ordering, thread_id, now_ms(), notified)

    async def on_read_receipt(self, tx: Transaction, user_id: str, room_id: str, stream_ordering: int,
                              thread_id: str | None) -> None:
        """counts.on_read_receipt, then a badge-only push to the user's pushers when it lowered their
        badge, so a phone's badge clears when the user reads elsewhere (Synapse sends one on every
        receipt; here only when the count changed). Spec: push-gateway-api, "POST
        /_matrix/push/v1/notify" (a notification with only `counts` and `devices`).
        """
        if not self.pushers.for_user(user_id):
            await counts.on_read_receipt(tx, user_id, room_id, stream_ordering, thread_id)
            return
        before = await store.get_badge_count(tx, user_id)
        await counts.on_read_receipt(tx, user_id, room_id, stream_ordering, thread_id)
        after = await store.get_badge_count(tx, user_id)
        if after < before:
            await self.pushers.enqueue(tx, user_id, {"counts": {"unread": after}, "prio": "low"})

    def _local_joined(self, room: RoomState) -> tuple[list[str], int]:
        local, count = [], 0
        for (event_type, member), pdu in room.state.items():
            if event_type == "m.room.member" and pdu.content.get("membership") == "join":
                count += 1
                if member.endswith(self.local_suffix):
                    local.append(member)
        return local, count

    async def _notification(self, tx: Transaction, room: RoomState, pdu: Pdu, user_id: str,
                            actions: tuple[Any, ...]) -> dict[str, Any]:
        """What the gateway is told, minus the per-pusher fields; content is read again at send time.

        prio is high for encrypted events and for anything that sounds or highlights, as Synapse does.
        Spec: push-gateway-api, "POST /_matrix/push/v1/notify".
        """
        tweaks = tweaks_for_actions(actions)
        high = pdu.type == "m.room.encrypted" or tweaks.get("highlight") is True or bool(tweaks.get("sound"))
        unread = await store.get_badge_count(tx, user_id)
        notification: dict[str, Any] = {"event_id": pdu.event_id, "room_id": room.room_id,
                                        "prio": "high" if high else "low",
                                        "counts": {"unread": unread} if unread else {}, "tweaks": tweaks}
        sender_name = _display_name(room, pdu.sender)
        if sender_name:
            notification["sender_display_name"] = sender_name
        name = room.state.get(("m.room.name", ""))
        if name is not None and isinstance(name.content.get("name"), str) and name.content["name"]:
            notification["room_name"] = name.content["name"]
        alias = room.state.get(("m.room.canonical_alias", ""))
        if alias is not None and isinstance(alias.content.get("alias"), str):
            notification["room_alias"] = alias.content["alias"]
        return notification

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        """SyncSource: unread counts on every joined room entry; m.push_rules in an initial sync.

        Spec: client-server-api, "Receiving notifications", "Push Rules: Events".
        """
        joins = ctx.response.get("rooms", {}).get("join", {})
        if joins:
            timeline_filter = (ctx.sync_filter.get("room") or {}).get("timeline") or {}
            per_thread = timeline_filter.get("unread_thread_notifications") is True
            unread = store.get_unread(self.db, ctx.user_id, joins)
            for room_id, entry in joins.items():
                entry.update(counts.unread_fields(unread.get(room_id, {}), per_thread))
        if ctx.since is None:
            data = ctx.response.setdefault("account_data", {}).setdefault("events", [])
            wanted = _account_data_wanted(ctx.sync_filter, ctx.user_id)
            if wanted and not any(e.get("type") == "m.push_rules" for e in data):
                ruleset = await self.rules.get_ruleset(ctx.user_id)
                data.append({"type": "m.push_rules", "content": {"global": ruleset.to_json()}})
        return False

    async def get_notifications(self, user_id: str, *, from_token: str | None, limit: int | None,
                                only: str | None) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/notifications"."""
        before = None
        if from_token is not None:
            if not (from_token.isascii() and from_token.isdigit()) or len(from_token) > 18:
                raise InvalidParam("Invalid from token")
            before = int(from_token)
        page = DEFAULT_NOTIFICATIONS_PAGE if limit is None else max(1, min(limit, MAX_NOTIFICATIONS_PAGE))
        rows = await store.get_push_actions(self.db, user_id, before=before, limit=page,
                                            only_highlight=only == "highlight")
        positions = await store.get_read_positions(self.db, user_id, {r.room_id for r in rows})
        stored = await event_store.get_events(self.db, [r.event_id for r in rows])
        events = await self.reader.serialize(stored.values(), user_id, include_room_id=False, bundle=False)
        by_id = {e["event_id"]: e for e in events}
        out = []
        for r in rows:
            event = by_id.get(r.event_id)
            if event is None:
                continue
            read_upto = max(positions.get((r.room_id, counts.UNTHREADED), 0), positions.get((r.room_id, r.thread_id), 0))
            out.append({"actions": r.actions, "event": event, "read": r.stream_ordering <= read_upto,
                        "room_id": r.room_id, "ts": r.ts})
        body: dict[str, Any] = {"notifications": out}
        if len(rows) == page:
            body["next_token"] = str(rows[-1].stream_ordering)
        return body


def _display_name(room: RoomState, user_id: str) -> str | None:
    member = room.state.get(("m.room.member", user_id))
    name = member.content.get("displayname") if member else None
    return name if isinstance(name, str) and name else None


def _account_data_wanted(sync_filter: Mapping[str, Any], user_id: str) -> bool:
    return event_matches(sync_filter.get("account_data"), event_type="m.push_rules", sender=user_id)
