"""OpenID tokens: a user's proof of identity for a third party (a widget, an integration manager,
Element Call's authorisation service), which trades the token back here for the user's ID.

Spec: client-server-api, "OpenID" (POST /_matrix/client/v3/user/{userId}/openid/request_token);
server-server-api, "OpenID" (GET /_matrix/federation/v1/openid/userinfo).

A token carries its owner and expiry and is authenticated by an HMAC-SHA256 under a key derived
from the server's signing key, so issuing one writes nothing and tokens outlive a restart. Like
Synapse's, a token lives an hour and is not revoked by logging out; the user's deactivation is
checked where a token is traded in.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

TOKEN_LIFETIME_MS = 3_600_000
MAX_TOKEN_CHARS = 1024      # a token for the longest user ID (255 bytes) is ~430 characters
_KEY_CONTEXT = b"pocketserver openid token key\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OpenIdTokens:
    """Issues tokens as `<expiry ms>.<user ID>.<nonce>.<mac>` (parts in base64url) and checks them."""

    def __init__(self, signing_seed: bytes) -> None:
        self._key = hashlib.sha256(_KEY_CONTEXT + signing_seed).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: str, now_ms: int) -> str:
        payload = f"{now_ms + TOKEN_LIFETIME_MS}.{_b64(user_id.encode())}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._mac(payload)}"

    def owner(self, token: str, now_ms: int) -> str | None:
        """The user a genuine, unexpired token was issued to; None for anything else."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        payload, _, mac = token.rpartition(".")
        if not payload or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() or int(parts[0]) <= now_ms:
            return None
        try:
            return _unb64(parts[1]).decode()
        except (binascii.Error, UnicodeDecodeError):    # unreachable with a genuine MAC
            return None
