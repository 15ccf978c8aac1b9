"""Account registration: UIA flows, registration tokens, guests and shared-secret registration.

Spec: client-server-api, "Account registration and management", "Token-authenticated
registration", "Guest access"; Synapse's admin API "Shared-Secret Registration".
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

from pocketserver.accounts.auth import now_ms
from pocketserver.accounts.passwords import PasswordHasher
from pocketserver.accounts.sessions import (IssuedSession, Sessions, check_device_fields,
                                            check_password_field)
from pocketserver.accounts.uia import UserInteractiveAuth
from pocketserver.config import Config
from pocketserver.errors import (BadJson, Forbidden, GuestAccessForbidden, InvalidParam,
                                 InvalidUsername, MatrixError, MissingParam, UserInUse)
from pocketserver.ids import InvalidIdentifier, check_new_localpart
from pocketserver.ratelimit import RateLimiter
from pocketserver.storage import accounts as store
from pocketserver.storage import profiles
from pocketserver.storage import registration_tokens as tokens
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

TOKEN_STAGE = "m.login.registration_token"
DUMMY_STAGE = "m.login.dummy"
NONCE_LIFETIME_S = 60.0
MAX_NONCES = 10_000      # the oldest goes first: a flood of nonce requests must not lock the admin out
REGISTRATION_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"


class _TokenInvalid(MatrixError):
    errcode, status = "M_UNAUTHORIZED", 401


def is_valid_registration_token(token: Any) -> bool:
    """Tokens are 1-64 characters of [A-Za-z0-9._~-].

    Spec: client-server-api, "Token-authenticated registration".
    """
    return (isinstance(token, str) and 0 < len(token) <= 64
            and all(c in REGISTRATION_TOKEN_ALPHABET for c in token))


def generate_registration_token() -> str:
    """16 URL-safe random characters (96 bits) that never start with "-".

    A leading "-" would make the command line read the token as an option
    (`pocketserver token revoke -G6h...` failed); one in 64 random tokens had one.
    """
    while True:
        token = secrets.token_urlsafe(12)
        if not token.startswith("-"):
            return token


class Registration:
    """Creates accounts."""

    def __init__(self, config: Config, db: Database, hasher: PasswordHasher, sessions: Sessions,
                 uia: UserInteractiveAuth, limit: RateLimiter) -> None:
        self._config = config
        self._db = db
        self._hasher = hasher
        self._sessions = sessions
        self._uia = uia
        self._limit = limit
        self._nonces: dict[str, float] = {}

    def flows(self) -> list[list[str]]:
        """Synapse's flows: a token stage first when tokens are required, then the dummy stage."""
        if self._config.registration_requires_token:
            return [[TOKEN_STAGE, DUMMY_STAGE]]
        return [[DUMMY_STAGE]]

    async def check_available(self, localpart: Any) -> None:
        """Raise unless `localpart` is a valid, free user name here.

        Spec: client-server-api, "GET /_matrix/client/v3/register/available".
        """
        if not isinstance(localpart, str):
            raise InvalidUsername("username must be a string")
        try:
            check_new_localpart(localpart.lower(), self._config.server_name)
        except InvalidIdentifier as exc:
            raise InvalidUsername(str(exc)) from None
        if await store.get_user(self._db, self.user_id(localpart)) is not None:
            raise UserInUse("User ID already taken.")

    def user_id(self, localpart: str) -> str:
        return f"@{localpart.lower()}:{self._config.server_name}"

    async def token_valid(self, token: Any) -> bool:
        """Spec: client-server-api, "GET /_matrix/client/v1/register/m.login.registration_token/validity"."""
        if not is_valid_registration_token(token):
            return False
        found = await tokens.get_registration_token(self._db, token)
        return found is not None and found.usable(now_ms())

    def spend_token_check(self, client_address: str) -> None:
        """Each check of a registration token, right or wrong, spends one of the address's
        registration allowance (kept apart from registrations), so tokens cannot be guessed
        quickly: at the defaults 5 at once, then one every 6 s (Synapse limits its validity
        endpoint alike)."""
        self._limit.spend(f"token-check:{client_address}")

    async def complete_token_stage(self, session_id: str, token: str) -> None:
        """The registration token stage, done on its fallback web page. Spec: client-server-api, "Fallback"."""
        if TOKEN_STAGE not in {s for f in self.flows() for s in f}:
            raise Forbidden("This server does not ask for a registration token")
        await self._uia.complete_stage(session_id, "register", TOKEN_STAGE, self._check_stage, {"token": token})

    async def _check_stage(self, stage: str, auth: Mapping[str, Any]) -> Any:
        if stage == TOKEN_STAGE:
            token = auth.get("token")
            if not await self.token_valid(token):
                raise _TokenInvalid("Invalid registration token")
            return token
        return True

    async def register(self, body: Mapping[str, Any], kind: str, client_address: str) -> dict[str, Any]:
        """Register a user (or a guest) and, unless inhibited, log them in.

        Spec: client-server-api, "POST /_matrix/client/v3/register".
        """
        if kind == "guest":
            return await self._register_guest(body, client_address)
        if kind != "user":
            raise InvalidParam("kind must be 'user' or 'guest'")
        if not self._config.enable_registration:
            raise Forbidden("Registration has been disabled")
        self._limit.check(f"address:{client_address}")
        username, password = body.get("username"), body.get("password")
        device_id, display_name = body.get("device_id"), body.get("initial_device_display_name")
        inhibit_login, refreshable = body.get("inhibit_login", False), body.get("refresh_token", False)
        if not isinstance(inhibit_login, bool) or not isinstance(refreshable, bool):
            raise BadJson("inhibit_login and refresh_token must be booleans")
        check_device_fields(device_id, display_name)
        if password is not None:
            check_password_field(password)
        if username is not None:
            await self.check_available(username)
        auth = body.get("auth")
        if isinstance(auth, dict) and auth.get("type") == TOKEN_STAGE:
            self.spend_token_check(client_address)
        session = await self._uia.authenticate(auth, self.flows(), self._check_stage, operation="register")
        if password is None:
            raise MissingParam("Missing password")
        localpart = username.lower() if username is not None else await self._free_localpart()
        # Spent before the hash: requests sent at once must not each get the CPU of a password hash
        # (~0.2 s on a Raspberry Pi) before the limit refuses all but one.
        self._limit.spend(f"address:{client_address}")
        password_hash = await self._hasher.hash(password)
        token = session.completed.get(TOKEN_STAGE)

        async def job(tx: Transaction) -> dict[str, Any]:
            user_id = self.user_id(localpart)
            if await store.get_user_tx(tx, user_id) is not None:
                raise UserInUse("User ID already taken.")
            if token is not None and not await tokens.use_registration_token(tx, token, now_ms()):
                raise Forbidden("The registration token has been used up or has expired")
            await store.insert_user(tx, user_id, password_hash, admin=False, is_guest=False,
                                    user_type=None, now_ms=now_ms())
            # Like Synapse, a new account starts with its localpart as display name.
            await profiles.set_profile_field(tx, user_id, "displayname", localpart)
            if inhibit_login:
                return {"user_id": user_id, "home_server": self._config.server_name}
            issued = await self._sessions.issue(tx, user_id, device_id, display_name,
                                                refreshable=refreshable)
            return issued.body(self._config.server_name)

        return await self._db.write(job)

    async def _free_localpart(self) -> str:
        """A numeric localpart nobody has, as Synapse gives guests and name-less registrations."""
        while True:
            candidate = str(secrets.randbelow(10**9))
            if await store.get_user(self._db, self.user_id(candidate)) is None:
                return candidate

    async def _register_guest(self, body: Mapping[str, Any], client_address: str) -> dict[str, Any]:
        if not self._config.allow_guest_access:
            raise GuestAccessForbidden("Guest access is disabled")
        self._limit.spend(f"address:{client_address}")
        display_name = body.get("initial_device_display_name")
        check_device_fields(None, display_name)
        localpart = await self._free_localpart()

        async def job(tx: Transaction) -> IssuedSession:
            user_id = self.user_id(localpart)
            await store.insert_user(tx, user_id, None, admin=False, is_guest=True, user_type=None,
                                    now_ms=now_ms())
            return await self._sessions.issue(tx, user_id, None, display_name, refreshable=False)

        return (await self._db.write(job)).body(self._config.server_name)

    async def create_user(self, localpart: str, password: str | None, *, admin: bool = False,
                          user_type: str | None = None, login: bool = False,
                          display_name: str | None = None) -> dict[str, Any]:
        """Create a user directly (command line and shared-secret registration)."""
        try:
            check_new_localpart(localpart, self._config.server_name)
        except InvalidIdentifier as exc:
            raise InvalidUsername(str(exc)) from None
        password_hash = await self._hasher.hash(password) if password else None
        user_id = self.user_id(localpart)

        async def job(tx: Transaction) -> dict[str, Any]:
            if await store.get_user_tx(tx, user_id) is not None:
                raise UserInUse("User ID already taken.")
            await store.insert_user(tx, user_id, password_hash, admin=admin, is_guest=False,
                                    user_type=user_type, now_ms=now_ms())
            await profiles.set_profile_field(tx, user_id, "displayname", display_name or localpart)
            if not login:
                return {"user_id": user_id}
            issued = await self._sessions.issue(tx, user_id, None, None, refreshable=False)
            return issued.body(self._config.server_name)

        return await self._db.write(job)

    # Shared-secret registration, compatible with Synapse's /_synapse/admin/v1/register.

    def new_nonce(self) -> str:
        now = time.monotonic()
        for nonce in [n for n, t in self._nonces.items() if now - t > NONCE_LIFETIME_S]:
            del self._nonces[nonce]
        while len(self._nonces) >= MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = now
        return nonce

    async def register_with_shared_secret(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Check the HMAC-SHA1 over nonce, user, password and admin flag, then create the user."""
        secret = self._config.registration_shared_secret
        if not secret:
            raise Forbidden("Shared secret registration is not enabled")
        nonce, username, password = body.get("nonce"), body.get("username"), body.get("password")
        mac, admin, user_type = body.get("mac"), body.get("admin", False), body.get("user_type")
        displayname = body.get("displayname")
        if not isinstance(nonce, str) or nonce not in self._nonces:
            raise InvalidParam("unrecognised nonce")
        del self._nonces[nonce]   # single use, even if the rest fails
        if not isinstance(username, str) or not username or "\x00" in username:
            raise InvalidParam("Invalid username")
        if not isinstance(password, str) or not password or "\x00" in password:
            raise InvalidParam("Invalid password")
        if not isinstance(admin, bool):
            raise InvalidParam("Invalid admin flag")
        if user_type is not None and (not isinstance(user_type, str) or "\x00" in user_type):
            raise InvalidParam("Invalid user type")
        if displayname is not None and not isinstance(displayname, str):
            raise InvalidParam("Invalid displayname")
        if not isinstance(mac, str):
            raise InvalidParam("Invalid mac")
        check_password_field(password)
        signed = b"\x00".join([nonce.encode(), username.encode(), password.encode(),
                               b"admin" if admin else b"notadmin"])
        if user_type:
            signed += b"\x00" + user_type.encode()
        expected = hmac.new(secret.encode(), signed, hashlib.sha1).hexdigest()
        if not hmac.compare_digest(expected, mac):
            raise Forbidden("HMAC incorrect")
        return await self.create_user(username.lower(), password, admin=admin, user_type=user_type,
                                      login=True, display_name=displayname)

    # Registration tokens, managed from the command line.

    async def create_token(self, token: str | None, uses_allowed: int | None,
                           expiry_ts: int | None) -> str:
        token = token or generate_registration_token()
        if not is_valid_registration_token(token):
            raise InvalidParam("tokens are 1-64 characters of A-Z a-z 0-9 . _ ~ -")
        async def job(tx: Transaction) -> None:
            if await tokens.get_registration_token_tx(tx, token) is not None:
                raise InvalidParam(f"a registration token {token!r} exists already")
            await tokens.insert_registration_token(tx, token, uses_allowed, expiry_ts, now_ms())

        await self._db.write(job)
        return token
