"""Log in, refresh and log out: devices with their access and refresh tokens.

Spec: client-server-api, "Login", "Refreshing access tokens", "Logout".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pocketserver.accounts.auth import (Authenticator, Requester, hash_token, new_access_token,
                                        new_device_id, new_refresh_token, now_ms)
from pocketserver.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHasher
from pocketserver.config import Config
from pocketserver.e2ee.device_keys import delete_device_keys
from pocketserver.storage.push import delete_pushers_of_devices
from pocketserver.errors import (BadJson, Forbidden, InvalidParam, MissingParam, UnknownToken,
                                 UserDeactivated, UserLocked)
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.ratelimit import RateLimiter
from pocketserver.storage import accounts as store
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

MAX_DEVICE_ID_CHARS = 255
MAX_DISPLAY_NAME_CHARS = 512


class IssuedSession(NamedTuple):
    """What a client receives after registering or logging in."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None

    def body(self, server_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"user_id": self.user_id, "access_token": self.access_token,
                               "device_id": self.device_id, "home_server": server_name}
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
            out["expires_in_ms"] = self.expires_in_ms
        return out


def check_device_fields(device_id: Any, display_name: Any) -> None:
    """Reject device IDs and display names of the wrong type or size."""
    if device_id is not None and (not isinstance(device_id, str) or not device_id
                                  or len(device_id) > MAX_DEVICE_ID_CHARS):
        raise InvalidParam("device_id must be a non-empty string of at most 255 characters")
    if display_name is not None and (not isinstance(display_name, str)
                                     or len(display_name) > MAX_DISPLAY_NAME_CHARS):
        raise InvalidParam("initial_device_display_name must be a string of at most 512 characters")


def check_password_field(password: Any) -> str:
    if not isinstance(password, str):
        raise BadJson("password must be a string")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidParam(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    return password


class Sessions:
    """Issues and revokes the tokens of devices."""

    def __init__(self, config: Config, db: Database, hasher: PasswordHasher, auth: Authenticator,
                 login_limit: RateLimiter, failed_auth_limit: RateLimiter) -> None:
        self._config = config
        self._db = db
        self._hasher = hasher
        self._auth = auth
        self._login_limit = login_limit
        self._failed_limit = failed_auth_limit

    async def issue(self, tx: Transaction, user_id: str, device_id: str | None,
                    display_name: str | None, *, refreshable: bool) -> IssuedSession:
        """Inside a write job: create or reuse the device and give it fresh tokens.

        Logging in again with an existing device ID replaces that device's old tokens.
        """
        device_id = device_id or new_device_id()
        now = now_ms()
        cap = self._config.max_devices_per_user
        if cap:
            count, exists = await store.count_devices_tx(tx, user_id, device_id)
            if not exists and count >= cap:
                raise Forbidden(f"Too many devices (at most {cap}); log out of or delete an old one first")
        await store.upsert_device(tx, user_id, device_id, display_name, now)
        await tx.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?",
                         (user_id, device_id))
        await tx.execute("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?",
                         (user_id, device_id))
        access_token = new_access_token()
        refresh_token, refresh_id, expires_ts, expires_in = None, None, None, None
        if refreshable:
            refresh_token = new_refresh_token()
            refresh_id = await store.insert_refresh_token(tx, hash_token(refresh_token), user_id,
                                                          device_id, now)
            expires_in = self._config.refreshable_access_token_lifetime_ms
            expires_ts = now + expires_in
        await store.insert_access_token(tx, hash_token(access_token), user_id, device_id, now,
                                        expires_ts, refresh_id)
        tx.changes.users.add(user_id)
        return IssuedSession(user_id, device_id, access_token, refresh_token, expires_in)

    def resolve_user(self, identifier: Any, legacy_user: Any) -> str:
        """The user ID named by a login `identifier` (or the deprecated `user` field)."""
        if identifier is None:
            if legacy_user is None:
                raise MissingParam("Missing identifier")
            identifier = {"type": "m.id.user", "user": legacy_user}
        if not isinstance(identifier, dict):
            raise BadJson("identifier must be an object")
        if identifier.get("type") != "m.id.user":
            raise Forbidden("Only m.id.user identifiers are supported on this server")
        user = identifier.get("user")
        if not isinstance(user, str) or not user:
            raise BadJson("identifier.user must be a non-empty string")
        if user.startswith("@"):
            try:
                parsed = UserID.parse(user)
            except InvalidIdentifier:
                raise Forbidden("Invalid username or password") from None
            if parsed.server_name != self._config.server_name:
                raise Forbidden("Invalid username or password")
            return f"@{parsed.localpart.lower()}:{parsed.server_name}"
        return f"@{user.lower()}:{self._config.server_name}"

    async def check_password(self, user_id: str, password: str) -> store.UserRow:
        """The user, if `password` is theirs; failed attempts are rate limited per account.

        Each attempt is counted as failed before the hash is checked, and given back if it
        succeeds: counted afterwards, attempts sent at once all passed the check before the first
        failure was counted, and each was answered (a 429 meaning "wrong", the 200 "right").
        """
        self._failed_limit.spend(user_id)
        user = await store.get_user(self._db, user_id)
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        if ok and user is not None:
            self._failed_limit.refund(user_id)
        else:
            if user is not None and user.deactivated:
                raise UserDeactivated("This account has been deactivated")
            raise Forbidden("Invalid username or password")
        return user

    async def login(self, body: Mapping[str, Any], client_address: str) -> IssuedSession:
        """Log in with m.login.password.

        Spec: client-server-api, "POST /_matrix/client/v3/login".
        """
        login_type = body.get("type")
        if login_type != "m.login.password":
            raise _UnknownLoginType(f"Unknown login type {login_type!r}")
        self._login_limit.spend(f"address:{client_address}")
        user_id = self.resolve_user(body.get("identifier"), body.get("user"))
        self._login_limit.spend(f"account:{user_id}")
        password = check_password_field(body.get("password"))
        device_id, display_name = body.get("device_id"), body.get("initial_device_display_name")
        check_device_fields(device_id, display_name)
        refreshable = body.get("refresh_token", False)
        if not isinstance(refreshable, bool):
            raise BadJson("refresh_token must be a boolean")
        user = await self.check_password(user_id, password)
        if user.deactivated:
            raise UserDeactivated("This account has been deactivated")
        if user.locked:
            raise UserLocked()
        return await self._db.write(
            lambda tx: self.issue(tx, user_id, device_id, display_name, refreshable=refreshable))

    async def refresh(self, refresh_token: Any) -> IssuedSession:
        """Swap a refresh token for a new access token and refresh token.

        The old refresh token stays good until the new pair is used (its access token, see
        Authenticator, or its refresh token, here): a client that lost the answer refreshes again
        with it, and the unused pair it was given is dropped. Spec: client-server-api,
        "Refreshing access tokens", "POST /_matrix/client/v3/refresh".
        """
        if not isinstance(refresh_token, str) or not refresh_token:
            raise MissingParam("Missing refresh_token")
        token_hash = hash_token(refresh_token)

        async def job(tx: Transaction) -> IssuedSession:
            found = await store.get_refresh_token(tx, token_hash)
            if found is None:
                raise UnknownToken("Unknown refresh token", soft_logout=False)
            old_id, user_id, device_id, next_id, locked = found
            if locked:
                raise UserLocked()
            if next_id is not None:       # refreshed before, its answer lost: that pair is unused
                await store.delete_refresh_token(tx, next_id)
            await store.revoke_predecessor(tx, old_id)     # this successor is in use now
            now = now_ms()
            new_refresh = new_refresh_token()
            new_id = await store.insert_refresh_token(tx, hash_token(new_refresh), user_id,
                                                      device_id, now)
            await store.retire_refresh_token(tx, old_id, new_id)
            access = new_access_token()
            lifetime = self._config.refreshable_access_token_lifetime_ms
            await store.insert_access_token(tx, hash_token(access), user_id, device_id, now,
                                            now + lifetime, new_id)
            return IssuedSession(user_id, device_id, access, new_refresh, lifetime)

        return await self._db.write(job)

    async def logout(self, requester: Requester) -> None:
        """Delete the requester's device and every token it holds.

        Spec: client-server-api, "POST /_matrix/client/v3/logout".
        """
        await self._db.write(lambda tx: self.delete_devices(tx, requester.user_id, [requester.device_id]))
        self._auth.forget_device(requester.user_id, requester.device_id)

    async def logout_all(self, requester: Requester) -> None:
        """Delete every device of the requester's account.

        Spec: client-server-api, "POST /_matrix/client/v3/logout/all".
        """
        async def job(tx: Transaction) -> None:
            await self.delete_devices(tx, requester.user_id,
                                      await store.list_device_ids_tx(tx, requester.user_id))
        await self._db.write(job)

    async def delete_devices(self, tx: Transaction, user_id: str, device_ids: list[str]) -> None:
        for device_id in device_ids:
            await store.delete_device(tx, user_id, device_id)
            self._auth.forget_device(user_id, device_id)
        await delete_device_keys(tx, user_id, device_ids)
        # A device that is gone gets no more pushes (spec: pushers belong to the access token's device).
        await delete_pushers_of_devices(tx, user_id, device_ids)
        tx.changes.users.add(user_id)


class _UnknownLoginType(InvalidParam):
    errcode, status = "M_UNKNOWN", 400
