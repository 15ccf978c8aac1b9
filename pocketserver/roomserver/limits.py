"""Abuse limits on what local users do to rooms: sends, room creation, invites, joins, rooms joined.

Rates are token buckets (defaults as Synapse's rc_message, rc_invites and rc_joins); counts are
checked against the database. Spec: client-server-api, "Rate limiting" (429 M_LIMIT_EXCEEDED with
retry_after_ms); a count at its cap is a 403 M_FORBIDDEN, as waiting would not help.
"""
from __future__ import annotations

from pocketserver.config import Config
from pocketserver.errors import Forbidden
from pocketserver.ratelimit import RateLimiter
from pocketserver.storage import rooms as room_store
from pocketserver.storage.database import Database


class RoomLimits:
    """The rate limiters and caps of room actions, one set per server."""

    def __init__(self, config: Config) -> None:
        self.messages = RateLimiter(config.rc_message_per_second, config.rc_message_burst)
        self.room_creation = RateLimiter(config.rc_room_creation_per_second, config.rc_room_creation_burst)
        self.invites = RateLimiter(config.rc_invites_per_second, config.rc_invites_burst)
        self.invites_received = RateLimiter(config.rc_invites_received_per_second,
                                            config.rc_invites_received_burst)
        self.joins = RateLimiter(config.rc_joins_per_second, config.rc_joins_burst)
        self.max_rooms_per_user = config.max_rooms_per_user

    def spend_invite(self, sender: str, room_id: str, target: str) -> None:
        """One invite: counted for its sender, its room and its target, all or none."""
        keys = ((self.invites, f"issuer:{sender}"), (self.invites, f"room:{room_id}"),
                (self.invites_received, target))
        for limiter, key in keys:
            limiter.check(key)
        for limiter, key in keys:
            limiter.spend(key)

    async def check_room_count(self, db: Database, user_id: str) -> None:
        """Refuse one more joined room to a user already at max_rooms_per_user."""
        if self.max_rooms_per_user and await room_store.count_joined_rooms(db, user_id) >= self.max_rooms_per_user:
            raise Forbidden(f"You are in too many rooms (at most {self.max_rooms_per_user}); leave one first")

    async def spend_join(self, db: Database, user_id: str) -> None:
        """A join to a room the user is not in yet: the room cap, then the join rate."""
        await self.check_room_count(db, user_id)
        self.joins.spend(user_id)
