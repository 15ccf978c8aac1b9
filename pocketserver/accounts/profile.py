"""User profiles: displayname, avatar_url, m.tz and custom namespaced fields.

Spec: client-server-api, "Profiles" (generic fields since v1.16).
"""
from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable

from pocketserver.config import Config
from pocketserver.errors import (BadJson, Forbidden, InvalidParam, KeyTooLarge, MissingParam,
                                 NotFound, ProfileTooLarge)
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import accounts as store
from pocketserver.storage import profiles
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

# The Common Namespaced Identifier Grammar (appendices), as Synapse's NAMESPACED_GRAMMAR; the byte
# limit is checked apart (M_KEY_TOO_LARGE).
_KEY_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255
_MXC = re.compile(r"^mxc://[^/]+/[A-Za-z0-9_-]+$")


class Profiles:
    """Reads and changes the profiles of local users."""

    def __init__(self, config: Config, db: Database) -> None:
        self._config = config
        self._db = db
        self._listeners: list[Callable[[str], Awaitable[None]]] = []

    def add_listener(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Call `listener(user_id)` after a displayname or avatar_url change is committed."""
        self._listeners.append(listener)

    async def _changed(self, user_id: str, key: str) -> None:
        if key in ("displayname", "avatar_url"):
            for listener in self._listeners:
                await listener(user_id)

    async def _local_user(self, user_id: str) -> str:
        try:
            parsed = UserID.parse(user_id)
        except InvalidIdentifier:
            raise InvalidParam("Invalid user ID") from None
        if parsed.server_name != self._config.server_name:
            # Remote profiles need federation, which is not enabled.
            raise NotFound("Profile not found")
        user = await store.get_user(self._db, user_id)
        if user is None or user.deactivated:     # a deactivated account has no profile, as in Synapse
            raise NotFound("Profile not found")
        return user_id

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/profile/{userId}"."""
        return await profiles.get_profile(self._db, await self._local_user(user_id))

    async def get_field(self, user_id: str, key: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/profile/{userId}/{keyName}"."""
        _check_key(key)
        profile = await profiles.get_profile(self._db, await self._local_user(user_id))
        if key not in profile:
            raise NotFound("Profile field not found")
        return {key: profile[key]}

    async def set_field(self, requester_id: str, user_id: str, key: str, body: dict[str, Any]) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/profile/{userId}/{keyName}"."""
        _check_key(key)
        if requester_id != user_id:
            raise Forbidden("You may only change your own profile")
        if key not in body:
            raise MissingParam(f"Missing key '{key}'")
        value = body[key]
        _check_value(key, value)

        async def job(tx: Transaction) -> None:
            profile = await profiles.get_profile_tx(tx, user_id)
            profile[key] = value
            if len(json.dumps(profile, ensure_ascii=False).encode()) > MAX_PROFILE_BYTES:
                raise ProfileTooLarge("The profile would exceed 64 KiB")
            await profiles.set_profile_field(tx, user_id, key, value)
            tx.changes.users.add(user_id)

        await self._db.write(job)
        await self._changed(user_id, key)

    async def delete_field(self, requester_id: str, user_id: str, key: str) -> None:
        """Spec: client-server-api, "DELETE /_matrix/client/v3/profile/{userId}/{keyName}"."""
        _check_key(key)
        if requester_id != user_id:
            raise Forbidden("You may only change your own profile")

        async def job(tx: Transaction) -> None:
            await profiles.delete_profile_field(tx, user_id, key)
            tx.changes.users.add(user_id)

        await self._db.write(job)
        await self._changed(user_id, key)


def _check_key(key: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLarge("Profile keys are at most 255 bytes")
    if not _KEY_NAME.match(key):
        raise InvalidParam("Invalid profile key")


def _check_value(key: str, value: Any) -> None:
    if key == "displayname":
        if not isinstance(value, str):
            raise BadJson("displayname must be a string")
        if len(value) > 256:
            raise BadJson("displayname must be at most 256 characters")
    elif key == "avatar_url":
        # An empty string clears the avatar, as Synapse and Element treat it.
        if not isinstance(value, str) or (value and not _MXC.match(value)):
            raise BadJson("avatar_url must be an mxc:// URI")
    elif key == "m.tz" and not isinstance(value, str):
        raise BadJson("m.tz must be a string")
