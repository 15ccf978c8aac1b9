"""Simplified sliding sync (MSC4186) extensions: to_device, e2ee, account_data, receipts, typing.

The e2ee, receipts and typing parts come from the same sync sources that fill /sync, so the
areas that own the data stay the only ones reading it.
Spec: MSC3884 (e2ee), MSC3885 (to_device), MSC3959 (account_data), MSC3960 (receipts),
MSC3961 (typing), as used by MSC4186; "lists"/"rooms" scoping as Synapse.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import e2ee_streams as to_device_store
from pocketserver.storage.database import Database
from pocketserver.sync.sources import SyncContext, SyncSource
from pocketserver.sync.tokens import StreamToken

DEFAULT_TO_DEVICE_LIMIT = 100
MAX_TO_DEVICE_LIMIT = 1000
PUSH_RULES = "m.push_rules"


class RuleSets(Protocol):
    async def get_ruleset(self, user_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class ExtensionScope:
    """The rooms this response covers, for the `lists` and `rooms` of room-scoped extensions."""

    lists: Mapping[str, Sequence[str]]        # list name -> room IDs in its ranges
    subscriptions: Sequence[str]              # subscribed rooms the user has a membership in
    memberships: Mapping[str, str]            # room ID -> the user's membership


@dataclass
class ExtensionResult:
    body: dict[str, Any]
    news: bool                                # something a waiting client should be woken for
    scopes: dict[str, frozenset[str]]         # per extension: the rooms it covered (sent in full once)


def enabled(config: Any) -> bool:
    return isinstance(config, dict) and config.get("enabled") is True


def scoped_rooms(config: Mapping[str, Any], scope: ExtensionScope) -> list[str]:
    """Rooms of the named lists ("*": all) and subscriptions ("*": all); both default to "*" (as Synapse)."""
    lists = config.get("lists", ["*"])
    rooms = config.get("rooms", ["*"])
    chosen: dict[str, None] = {}
    if isinstance(lists, list):
        for name, room_ids in scope.lists.items():
            if "*" in lists or name in lists:
                chosen.update(dict.fromkeys(room_ids))
    if isinstance(rooms, list):
        for room_id in rooms:
            if room_id == "*":
                chosen.update(dict.fromkeys(scope.subscriptions))
            elif isinstance(room_id, str) and room_id in scope.memberships:
                chosen[room_id] = None
    return list(chosen)


class SlidingExtensions:
    """Computes the `extensions` of a sliding sync response."""

    def __init__(self, db: Database, *, typing: SyncSource, receipts: SyncSource, e2ee: Sequence[SyncSource],
                 push_rules: RuleSets | None = None) -> None:
        self._db = db
        self._typing = typing
        self._receipts = receipts
        self._e2ee = list(e2ee)
        self._push_rules = push_rules

    async def compute(self, user_id: str, device_id: str, requested: Mapping[str, Any], since: StreamToken | None,
                      now: StreamToken, scope: ExtensionScope, account_data_changes: list[tuple[str, str, Any]] | None,
                      previous: Mapping[str, frozenset[str]]) -> ExtensionResult:
        """`account_data_changes` are the rows since `since` (None: read everything, for a new connection)."""
        result = ExtensionResult({}, False, {})
        if enabled(requested.get("to_device")):
            await self._to_device(result, user_id, device_id, requested["to_device"], now)
        if enabled(requested.get("e2ee")):
            await self._e2ee_keys(result, user_id, device_id, since, now, scope)
        if enabled(requested.get("account_data")):
            rooms = scoped_rooms(requested["account_data"], scope)
            await self._account_data(result, user_id, since, now, rooms, account_data_changes,
                                     previous.get("account_data", frozenset()))
        for name, source, event_type in (("receipts", self._receipts, "m.receipt"), ("typing", self._typing, "m.typing")):
            if enabled(requested.get(name)):
                rooms = [r for r in scoped_rooms(requested[name], scope) if scope.memberships.get(r) == "join"]
                await self._ephemeral(result, name, source, event_type, user_id, device_id, since, now, rooms,
                                      previous.get(name, frozenset()))
        return result

    async def _to_device(self, result: ExtensionResult, user_id: str, device_id: str, config: Mapping[str, Any],
                         now: StreamToken) -> None:
        """Deliver pending messages after deleting those the client's `since` acknowledges.

        Spec: MSC3885 (to_device extension); "Send-to-Device messaging".
        """
        since = config.get("since")
        acknowledged = int(since) if isinstance(since, str) and since.isascii() and since.isdigit() and len(since) < 19 else 0
        limit = config.get("limit", DEFAULT_TO_DEVICE_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            limit = DEFAULT_TO_DEVICE_LIMIT
        limit = min(limit, MAX_TO_DEVICE_LIMIT)
        if acknowledged and to_device_store.has_messages(self._db, user_id, device_id, acknowledged):
            await self._db.write(lambda tx: to_device_store.delete_acknowledged_messages(tx, user_id, device_id,
                                                                                         acknowledged))
        pending = await to_device_store.get_pending_messages(self._db, user_id, device_id, now.to_device, limit + 1)
        next_batch = max(now.to_device, acknowledged)
        if len(pending) > limit:
            pending = pending[:limit]
            next_batch = pending[-1][0]
        result.body["to_device"] = {"next_batch": str(next_batch), "events": [m for _, m in pending]}
        result.news |= bool(pending)

    async def _e2ee_keys(self, result: ExtensionResult, user_id: str, device_id: str, since: StreamToken | None,
                         now: StreamToken, scope: ExtensionScope) -> None:
        """Device list changes (on an incremental response), one-time key counts, unused fallback key types.

        Spec: MSC3884; client-server-api, "Extensions to /sync" (end-to-end encryption).
        """
        joined = frozenset(r for r, m in scope.memberships.items() if m == "join")
        ctx = SyncContext(user_id, device_id, since, now, {}, False, joined, {})
        for source in self._e2ee:
            result.news |= await source.add_to_sync(ctx)
        body: dict[str, Any] = {
            "device_one_time_keys_count": ctx.response.get("device_one_time_keys_count", {}),
            "device_unused_fallback_key_types": ctx.response.get("device_unused_fallback_key_types", []),
        }
        if since is not None:
            body["device_lists"] = ctx.response.get("device_lists", {"changed": [], "left": []})
        result.body["e2ee"] = body

    async def _account_data(self, result: ExtensionResult, user_id: str, since: StreamToken | None, now: StreamToken,
                            rooms: list[str], changes: list[tuple[str, str, Any]] | None,
                            covered: frozenset[str]) -> None:
        """Global account data and that of the scoped rooms: everything once, then what changed.

        Spec: MSC3959; client-server-api, "Client Config".
        """
        if changes is None:
            changes = await account_data_store.get_account_data_since(self._db, user_id, 0, now.account_data)
        fresh = frozenset(r for r in rooms if since is None or r not in covered)
        full = changes
        if fresh and since is not None:
            full = await account_data_store.get_account_data_since(self._db, user_id, 0, now.account_data)
        global_data = {t: c for r, t, c in changes if r == ""}
        if since is None and PUSH_RULES not in global_data and self._push_rules is not None:
            global_data[PUSH_RULES] = {"global": (await self._push_rules.get_ruleset(user_id)).to_json()}
        wanted = frozenset(rooms)
        by_room: dict[str, dict[str, Any]] = {}
        for room_id, data_type, content in changes:
            if room_id in wanted and room_id not in fresh:
                by_room.setdefault(room_id, {})[data_type] = content
        for room_id, data_type, content in full:
            if room_id in fresh:
                by_room.setdefault(room_id, {})[data_type] = content
        result.scopes["account_data"] = frozenset(rooms)
        result.body["account_data"] = {
            "global": [{"type": t, "content": c} for t, c in global_data.items()],
            "rooms": {r: [{"type": t, "content": c} for t, c in data.items()] for r, data in by_room.items()},
        }
        result.news |= bool(global_data or by_room)

    async def _ephemeral(self, result: ExtensionResult, name: str, source: SyncSource, event_type: str, user_id: str,
                         device_id: str, since: StreamToken | None, now: StreamToken, rooms: Iterable[str],
                         covered: frozenset[str]) -> None:
        """Receipts or typing of the scoped joined rooms: current for rooms new to the scope, else changes.

        Spec: MSC3960 (receipts), MSC3961 (typing).
        """
        rooms = list(rooms)
        fresh = frozenset(r for r in rooms if since is None or r not in covered)
        events: dict[str, Any] = {}
        for group, group_since in ((fresh, None), (frozenset(rooms) - fresh, since)):
            if not group:
                continue
            ctx = SyncContext(user_id, device_id, group_since, now, {}, False, group, {})
            await source.add_to_sync(ctx)
            for room_id, entry in ctx.response.get("rooms", {}).get("join", {}).items():
                for event in entry.get("ephemeral", {}).get("events", []):
                    if event.get("type") == event_type:
                        events[room_id] = event
        result.scopes[name] = frozenset(rooms)
        result.body[name] = {"rooms": events}
        result.news |= bool(events)
