"""Per-user push rules: the server defaults plus the user's own rules and changes, stored by the writer.

Every change also rewrites the user's `m.push_rules` account data, so it reaches their clients
through /sync. Spec: client-server-api, "Push Rules: API", "Push Rules: Events".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pocketserver.errors import BadRequest, InvalidParam, NotFound
from pocketserver.push.default_rules import default_rules
from pocketserver.push.evaluator import KINDS, PushRule, strip_legacy_actions
from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import push as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

PUSH_RULES_TYPE = "m.push_rules"
MAX_CACHED_USERS = 1024
MAX_RULES_PER_KIND = 500


class RuleSet(NamedTuple):
    """A user's complete rule list in evaluation order (the master rule first)."""

    rules: tuple[PushRule, ...]
    defaults_only: bool = False       # the server defaults, untouched: no rule of the user's own, no change

    def by_kind(self) -> dict[str, list[PushRule]]:
        out: dict[str, list[PushRule]] = {kind: [] for kind in KINDS}
        for rule in self.rules:
            out[rule.kind].append(rule)
        return out

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """The spec's PushRuleset: kind -> rules."""
        return {kind: [r.to_json() for r in rules] for kind, rules in self.by_kind().items()}

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        for rule in self.rules:
            if rule.kind == kind and rule.rule_id == rule_id:
                return rule
        return None


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidParam(f"Unknown push rule kind {kind!r}")


def check_actions(actions: Any) -> tuple[Any, ...]:
    """Validate actions (Synapse accepts the historical ones and we then strip them). Spec: "Actions"."""
    if not isinstance(actions, list):
        raise BadRequest("No actions found")
    for action in actions:
        if isinstance(action, str) and action in ("notify", "dont_notify", "coalesce"):
            continue
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            continue
        raise BadRequest(f"Unrecognised action {action!r}")
    return strip_legacy_actions(actions)


def _check_conditions(conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise BadRequest("Missing 'conditions'")
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise BadRequest("Condition without 'kind'")
    return conditions


def build_ruleset(user_id: str, own: list[store.StoredRule],
                  changes: Mapping[tuple[str, str], tuple[bool | None, list[Any] | None]]) -> RuleSet:
    """Defaults and the user's rules in evaluation order: master, then per kind the user's rules before the defaults.

    Spec: client-server-api, "Predefined Rules" (server-default rules rank below user-defined ones
    of the same kind, except .m.rule.master).
    """
    defaults = []
    for rule in default_rules(user_id):
        enabled, actions = changes.get((rule.kind, rule.rule_id), (None, None))
        if enabled is not None or actions is not None:
            rule = PushRule(rule.kind, rule.rule_id, True, rule.enabled if enabled is None else enabled,
                            rule.actions if actions is None else tuple(actions), rule.conditions, rule.pattern)
        defaults.append(rule)
    mine = [PushRule(r.kind, r.rule_id, False, r.enabled, tuple(r.actions),
                     tuple(r.conditions) if r.conditions is not None else None, r.pattern) for r in own]
    ordered = [defaults[0]]
    for kind in KINDS:
        ordered += [r for r in mine if r.kind == kind]
        ordered += [r for r in defaults[1:] if r.kind == kind]
    return RuleSet(tuple(ordered), defaults_only=not own and not changes)


class PushRules:
    """Reads, caches and changes users' push rules."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, RuleSet] = {}
        self._stale: set[str] = set()     # changed by a job not yet known to be committed

    async def get_ruleset(self, user_id: str) -> RuleSet:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        ruleset = build_ruleset(user_id, await store.get_user_rules(self.db, user_id),
                                await store.get_default_changes(self.db, user_id))
        self._remember(user_id, ruleset)
        return ruleset

    def cached(self, user_id: str) -> RuleSet | None:
        """The user's ruleset if it is in the cache (no read, no await)."""
        return self._cache.get(user_id)

    async def get_ruleset_tx(self, tx: Transaction, user_id: str) -> RuleSet:
        """The ruleset read inside a write job (cached, so evaluation at persist time stays cheap)."""
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        ruleset = build_ruleset(user_id, await store.get_user_rules(tx, user_id),
                                await store.get_default_changes(tx, user_id))
        self._remember(user_id, ruleset)
        return ruleset

    def _remember(self, user_id: str, ruleset: RuleSet) -> None:
        if len(self._cache) >= MAX_CACHED_USERS:
            self._cache.pop(next(iter(self._cache)))
        self._cache[user_id] = ruleset

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> PushRule:
        check_kind(kind)
        rule = (await self.get_ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise NotFound("Unknown push rule")
        return rule

    async def set_rule(self, user_id: str, kind: str, rule_id: str, body: Mapping[str, Any], *,
                       before: str | None, after: str | None) -> None:
        """Create or replace a user rule, placed relative to `before`/`after` when given.

        Spec: client-server-api, "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}".
        """
        check_kind(kind)
        _check_rule_id(rule_id)
        if rule_id.startswith("."):
            raise BadRequest("cannot add new rule_ids that start with '.'")
        actions = list(check_actions(body.get("actions")))
        conditions: list[Any] | None = None
        pattern: str | None = None
        if kind in ("override", "underride"):
            conditions = _check_conditions(body.get("conditions", []))
        elif kind == "content":
            pattern = body.get("pattern")
            if not isinstance(pattern, str):
                raise BadRequest("Content rule missing 'pattern'")

        async def job(tx: Transaction) -> None:
            order = [r.rule_id for r in await store.get_user_rules(tx, user_id) if r.kind == kind]
            exists = rule_id in order
            if not exists and len(order) >= MAX_RULES_PER_KIND:
                raise BadRequest("Too many push rules")
            for anchor in (before, after):
                if anchor is not None and (anchor == rule_id or anchor not in order):
                    raise BadRequest(f"before/after rule not found: {anchor}")
            if exists and (before or after):
                order.remove(rule_id)
            if before:
                order.insert(order.index(before), rule_id)
            elif after:
                order.insert(order.index(after) + 1, rule_id)
            elif not exists:
                order.insert(0, rule_id)
            await store.upsert_rule(tx, user_id, kind, rule_id, 0, conditions, pattern, actions)
            await store.set_rule_priorities(tx, user_id, kind, order)
            await self._publish(tx, user_id)

        await self._write(user_id, job)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        """Spec: client-server-api, "DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"."""
        check_kind(kind)

        async def job(tx: Transaction) -> None:
            if not await store.delete_rule(tx, user_id, kind, rule_id):
                raise NotFound("Unknown push rule")
            await self._publish(tx, user_id)

        await self._write(user_id, job)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: Any) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"."""
        check_kind(kind)
        if not isinstance(enabled, bool):
            raise BadRequest("Value for 'enabled' must be boolean")
        is_default = await self._require(user_id, kind, rule_id)

        async def job(tx: Transaction) -> None:
            if is_default:
                await store.set_default_change(tx, user_id, kind, rule_id, enabled=enabled)
            elif not await store.set_rule_enabled(tx, user_id, kind, rule_id, enabled):
                raise NotFound("Unknown push rule")
            await self._publish(tx, user_id)

        await self._write(user_id, job)

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"."""
        check_kind(kind)
        checked = list(check_actions(actions))
        is_default = await self._require(user_id, kind, rule_id)

        async def job(tx: Transaction) -> None:
            if is_default:
                await store.set_default_change(tx, user_id, kind, rule_id, actions=checked)
            elif not await store.set_rule_actions(tx, user_id, kind, rule_id, checked):
                raise NotFound("Unknown push rule")
            await self._publish(tx, user_id)

        await self._write(user_id, job)

    async def copy_room_rules(self, tx: Transaction, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """Inside a write job: the user's enabled rules for the old room, again for its successor (a
        room rule, and override or underride rules matching its room_id), each placed just before
        the rule it copies. A rule the user already has is left alone. As Synapse does on a room
        upgrade; spec: client-server-api, "Room Upgrades" ("notifications, tags, etc.")."""
        own = await store.get_user_rules(tx, user_id)
        have = {(r.kind, r.rule_id) for r in own}
        copies: dict[tuple[str, str], tuple[str, list[Any] | None]] = {}   # (kind, original) -> (new id, conditions)
        for rule in own:
            if not rule.enabled:
                continue
            if rule.kind == "room" and rule.rule_id == old_room_id:
                copies[(rule.kind, rule.rule_id)] = (new_room_id, None)
            elif rule.kind in ("override", "underride") and any(_names_room(c, old_room_id) for c in rule.conditions or ()):
                new_id = rule.rule_id.replace(old_room_id, new_room_id)
                conditions = [dict(c, pattern=new_room_id) if _names_room(c, old_room_id) else c
                              for c in rule.conditions or ()]
                if new_id != rule.rule_id:
                    copies[(rule.kind, rule.rule_id)] = (new_id, conditions)
        copies = {k: v for k, v in copies.items() if (k[0], v[0]) not in have}
        if not copies:
            return
        for kind in sorted({k for k, _ in copies}):
            order: list[str] = []
            for rule in (r for r in own if r.kind == kind):
                if (kind, rule.rule_id) in copies:
                    new_id, conditions = copies[(kind, rule.rule_id)]
                    await store.upsert_rule(tx, user_id, kind, new_id, 0, conditions, rule.pattern, list(rule.actions))
                    order.append(new_id)
                order.append(rule.rule_id)
            if len(order) <= MAX_RULES_PER_KIND:
                await store.set_rule_priorities(tx, user_id, kind, order)
        await self._publish(tx, user_id)
        self._stale.add(user_id)

    def after_commit(self, changes: Any) -> None:
        """Writer listener: drop rulesets changed inside other services' write jobs once committed
        (a read between the job's own drop and its commit may have cached the old rules)."""
        if self._stale:
            for user_id in self._stale:
                self._cache.pop(user_id, None)
            self._stale.clear()

    async def _require(self, user_id: str, kind: str, rule_id: str) -> bool:
        """Raise NotFound unless the rule exists; True when it is a server-default rule."""
        rule = (await self.get_ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise NotFound("Unknown push rule")
        return rule.default

    async def _publish(self, tx: Transaction, user_id: str) -> None:
        """Write the new rules into m.push_rules account data, in the same job as the change."""
        self._cache.pop(user_id, None)
        ruleset = build_ruleset(user_id, await store.get_user_rules(tx, user_id),
                                await store.get_default_changes(tx, user_id))
        await account_data_store.set_account_data(tx, user_id, account_data_store.GLOBAL, PUSH_RULES_TYPE,
                                                  {"global": ruleset.to_json()})

    async def _write(self, user_id: str, job: Any) -> None:
        try:
            await self.db.write(job)
        finally:
            self._cache.pop(user_id, None)


def _names_room(condition: Any, room_id: str) -> bool:
    """Whether a condition is an event_match of the room ID (how clients write per-room rules)."""
    return isinstance(condition, Mapping) and condition.get("kind") == "event_match" \
        and condition.get("key") == "room_id" and condition.get("pattern") == room_id


def _check_rule_id(rule_id: str) -> None:
    """Spec: "ruleId": slashes and backslashes are not allowed."""
    if not rule_id or "/" in rule_id or "\\" in rule_id:
        raise InvalidParam("rule_id may not contain slashes")
