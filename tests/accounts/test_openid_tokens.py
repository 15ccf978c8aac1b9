"""OpenID tokens: issued for a user, traded back for that user until they expire, and nothing else.

Spec: client-server-api, "OpenID"; server-server-api, "OpenID".
"""
from __future__ import annotations

import pytest

from pocketserver.accounts.openid import MAX_TOKEN_CHARS, TOKEN_LIFETIME_MS, OpenIdTokens

NOW = 1_800_000_000_000


def test_a_token_names_its_user_until_it_expires() -> None:
    tokens = OpenIdTokens(bytes(32))
    token = tokens.issue("@alice:test.local", NOW)
    assert tokens.owner(token, NOW) == "@alice:test.local"
    assert tokens.owner(token, NOW + TOKEN_LIFETIME_MS - 1) == "@alice:test.local"
    assert tokens.owner(token, NOW + TOKEN_LIFETIME_MS) is None
    assert tokens.issue("@alice:test.local", NOW) != token      # each token is new
    # A restart with the same signing key still knows the token; another server's key does not.
    assert OpenIdTokens(bytes(32)).owner(token, NOW) == "@alice:test.local"
    assert OpenIdTokens(bytes([1]) * 32).owner(token, NOW) is None


def test_a_changed_token_is_refused() -> None:
    tokens = OpenIdTokens(bytes(32))
    token = tokens.issue("@alice:test.local", NOW)
    expiry, user, nonce, mac = token.split(".")
    mallory = tokens.issue("@mallory:test.local", NOW).split(".")[1]
    later = str(int(expiry) + 10 * TOKEN_LIFETIME_MS)
    for forged in (f"{expiry}.{mallory}.{nonce}.{mac}", f"{later}.{user}.{nonce}.{mac}",
                   f"{expiry}.{user}.{nonce}x.{mac}", f"{expiry}.{user}.{nonce}.{mac[:-1]}",
                   f"{expiry}.{user}.{nonce}", f"{user}.{nonce}.{mac}", token + "."):
        assert tokens.owner(forged, NOW) is None, forged


@pytest.mark.parametrize("junk", ["", ".", "...", "a.b.c.d", "psat_abcdef", "١٢.x.y.z", "é" * 50,
                                  "x" * (MAX_TOKEN_CHARS + 1)])
def test_junk_is_no_token(junk: str) -> None:
    assert OpenIdTokens(bytes(32)).owner(junk, NOW) is None
