"""Account locking and suspension by server admins: reversible, unlike deactivation.

A locked account's requests answer 401 M_USER_LOCKED (accounts/auth.py); a suspended account may
read, leave and log out, but not join, invite, send or change its profile (Requester.
refuse_if_suspended). Spec: client-server-api, "Account moderation", "Server administration".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pocketserver.accounts.auth import Requester
from pocketserver.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import accounts as store
from pocketserver.storage.database import Database

Kind = Literal["locked", "suspended"]


class AccountModeration:
    """The admin API's checks and changes; the command line (`pocketserver user lock ...`) writes
    the same flags without them."""

    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def is_admin(self, user_id: str) -> bool:
        user = await store.get_user(self._db, user_id)
        return user is not None and user.admin

    async def _target(self, requester: Requester, user_id: str) -> store.UserRow:
        """The account an admin may moderate. The caller is checked first, so non-admins cannot
        learn which accounts exist."""
        if not await self.is_admin(requester.user_id):
            raise Forbidden("Requesting user is not a server administrator")
        try:
            parsed = UserID.parse(user_id)
        except InvalidIdentifier:
            raise InvalidParam("Invalid user ID") from None
        if parsed.server_name != self._server_name:
            raise InvalidParam("User does not belong to the local server")
        target = await store.get_user(self._db, user_id)
        if target is None or target.deactivated:
            raise NotFound("User not found")
        if target.admin:
            raise Forbidden("Server administrators cannot be locked or suspended")
        return target

    async def status(self, requester: Requester, user_id: str, kind: Kind) -> bool:
        """Spec: "GET /_matrix/client/v1/admin/lock/{userId}", ".../admin/suspend/{userId}"."""
        return bool(getattr(await self._target(requester, user_id), kind))

    async def set_status(self, requester: Requester, user_id: str, kind: Kind, body: Mapping[str, Any]) -> bool:
        """Set `body[kind]`, checked after the caller is. Spec: "PUT /_matrix/client/v1/admin/lock/{userId}",
        ".../admin/suspend/{userId}"."""
        await self._target(requester, user_id)
        if kind not in body:
            raise MissingParam(f"Missing params: [{kind!r}]")
        value = body[kind]
        if not isinstance(value, bool):
            raise BadJson(f"{kind} must be a boolean")
        await self._db.write(lambda tx: store.set_moderation(tx, user_id, **{kind: value}))
        return value
