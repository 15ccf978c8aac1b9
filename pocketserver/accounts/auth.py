"""Access tokens: issuing, hashing and authenticating requests.

Spec: client-server-api, "Client Authentication" and "Using access tokens".
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import string
import time
from typing import Any, NamedTuple

from pocketserver.errors import GuestAccessForbidden, MissingToken, UnknownToken, UserLocked, UserSuspended
from pocketserver.storage import accounts as store
from pocketserver.storage.database import Database

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_token(token: str) -> bytes:
    """SHA-256 of a token: only this is stored, so a copied database holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


def new_access_token() -> str:
    return "psat_" + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return "psrt_" + secrets.token_urlsafe(32)


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


class Requester(NamedTuple):
    """Who is making a request: the user and the device its access token belongs to."""

    user_id: str
    device_id: str
    is_guest: bool
    access_token_hash: bytes
    suspended: bool = False

    def refuse_if_suspended(self, action: str) -> None:
        """What a suspended account may not do (join, invite, send, change its profile, ...) answers
        M_USER_SUSPENDED. Spec: client-server-api, "Account suspension"."""
        if self.suspended:
            raise UserSuspended(f"{action} is not allowed while the account is suspended")


def token_from_request(request: Any) -> str | None:
    """The access token from `Authorization: Bearer` or the deprecated `access_token` query.

    Two Authorization headers, or one and the query parameter, are refused (401 M_MISSING_TOKEN, as
    Synapse): which token the request means is not for the server to guess.
    """
    headers = request.headers.getlist("Authorization")
    if len(headers) > 1:
        raise MissingToken("Too many Authorization headers.")
    header = headers[0] if headers else None
    if header and "access_token" in request.args:
        raise MissingToken("Mixing Authorization headers and access_token query parameters.")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    token = request.args.get("access_token")
    return token or None


MAX_IN_USE = 10_000     # refresh tokens remembered as in use (forgotten all at once: a re-read each)


class Authenticator:
    """Checks access tokens and records each device's last use in memory."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_seen: dict[tuple[str, str], tuple[str, int]] = {}
        self._writing: dict[tuple[str, str], tuple[str, int]] = {}   # handed to a write not yet committed
        self._in_use: set[int] = set()      # refresh tokens whose access token was seen in use

    async def get_user(self, request: Any, *, allow_guest: bool = False,
                       allow_locked: bool = False) -> Requester | None:
        """The requester if the request carries a token, else None; bad tokens raise.

        A locked account's tokens stay valid but answer M_USER_LOCKED everywhere except where
        `allow_locked` (logging out). Spec: client-server-api, "Account locking".
        """
        token = token_from_request(request)
        if token is None:
            if request.headers.get("Authorization"):
                # As Synapse: a header that is not "Bearer <token>" counts as no token at all.
                raise MissingToken("Invalid Authorization header")
            return None
        token_hash = hash_token(token)
        owner = store.get_token_owner(self._db, token_hash)
        if owner is None:
            raise UnknownToken("Unknown access token", soft_logout=False)
        now = now_ms()
        if owner.expires_ts is not None and owner.expires_ts <= now:
            raise UnknownToken("Access token has expired", soft_logout=True)
        if owner.locked and not allow_locked:
            raise UserLocked()
        if owner.is_guest and not allow_guest:
            raise GuestAccessForbidden("Guest access is not allowed here")
        if owner.refresh_token_id is not None and owner.refresh_token_id not in self._in_use:
            await self._first_use(owner.refresh_token_id)
        self._last_seen[(owner.user_id, owner.device_id)] = (request.remote_addr or "", now)
        return Requester(owner.user_id, owner.device_id, owner.is_guest, token_hash, owner.suspended)

    async def _first_use(self, refresh_token_id: int) -> None:
        """An access token from a refresh is used: the refresh token it replaced is revoked (spec:
        client-server-api, "Refreshing access tokens"). One write per refresh at most; the tokens
        seen in use are remembered, so later requests read nothing more."""
        if store.has_predecessor(self._db, refresh_token_id):
            await self._db.write(lambda tx: store.revoke_predecessor(tx, refresh_token_id))
        if len(self._in_use) >= MAX_IN_USE:
            self._in_use.clear()
        self._in_use.add(refresh_token_id)

    async def require_user(self, request: Any, *, allow_guest: bool = False,
                           allow_locked: bool = False) -> Requester:
        """The authenticated requester; raises M_MISSING_TOKEN or M_UNKNOWN_TOKEN otherwise."""
        requester = await self.get_user(request, allow_guest=allow_guest, allow_locked=allow_locked)
        if requester is None:
            raise MissingToken("Missing access token")
        return requester

    def forget_device(self, user_id: str, device_id: str) -> None:
        self._last_seen.pop((user_id, device_id), None)
        self._writing.pop((user_id, device_id), None)

    async def flush_last_seen(self, *, within: float = 0.0) -> None:
        """Write the remembered last-seen times in one job (not one write per request).

        They are served from memory and written with what else is kept there
        (Server.FLUSH_INTERVAL_S): every connected client's /sync long-poll refreshes them.
        `within`: the job may wait that long for a commit to ride along in (Database.write_along).
        """
        if not self._last_seen:
            return
        taken, self._last_seen = self._last_seen, {}
        self._writing = taken
        rows = [(u, d, ip, ts) for (u, d), (ip, ts) in taken.items()]
        try:
            await self._db.write_along(lambda tx: store.set_last_seen(tx, rows), within=within)
        except Exception:
            for key, seen in taken.items():      # kept for the next flush, unless used since
                self._last_seen.setdefault(key, seen)
            raise
        finally:
            if self._writing is taken:
                self._writing = {}

    def last_seen(self, user_id: str, device_id: str) -> tuple[str, int] | None:
        """The in-memory last use of a device not yet written to the database."""
        key = (user_id, device_id)
        return self._last_seen.get(key) or self._writing.get(key)
