"""Matrix identifiers: server names and user IDs.

Spec: appendices, "Identifier Grammar".
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_DNS_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?$")
# Localparts a new account may take (appendices, "User Identifiers").
_NEW_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")
# Historical localparts that must still be accepted when they come from elsewhere.
_HISTORICAL_LOCALPART = re.compile(r"^[\x21-\x39\x3B-\x7E]+$")
MAX_USER_ID_BYTES = 255


class InvalidIdentifier(ValueError):
    """An identifier does not match the spec's grammar."""


def is_valid_server_name(name: str) -> bool:
    """Whether `name` is hostname[:port] per the grammar.

    Spec: appendices, "Server Name".
    """
    if not name or len(name) > 255:
        return False
    host, port = name, None
    if name.startswith("["):
        end = name.find("]")
        if end < 0:
            return False
        host, rest = name[1 : end], name[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        if ":" in name:
            host, port = name.rsplit(":", 1)
        if not _DNS_NAME.match(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return False
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= len(port) <= 5 and int(port) <= 65535):
        return False
    return True


@dataclass(frozen=True, slots=True)
class UserID:
    """A parsed `@localpart:server_name`.

    Spec: appendices, "User Identifiers".
    """

    localpart: str
    server_name: str

    @classmethod
    def parse(cls, value: str) -> "UserID":
        if not isinstance(value, str) or not value.startswith("@") or ":" not in value:
            raise InvalidIdentifier(f"not a user ID: {value!r}")
        if len(value.encode()) > MAX_USER_ID_BYTES:
            raise InvalidIdentifier("user ID is longer than 255 bytes")
        localpart, server_name = value[1:].split(":", 1)
        if not localpart or not _HISTORICAL_LOCALPART.match(localpart):
            raise InvalidIdentifier(f"invalid user ID localpart: {value!r}")
        if not is_valid_server_name(server_name):
            raise InvalidIdentifier(f"invalid server name in user ID: {value!r}")
        return cls(localpart, server_name)

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.server_name}"


def check_new_localpart(localpart: str, server_name: str) -> None:
    """Raise InvalidIdentifier unless `localpart` may name a new account here.

    Spec: appendices, "User Identifiers" (the grammar for new user IDs).
    """
    if not localpart:
        raise InvalidIdentifier("User ID cannot be empty")
    if not _NEW_LOCALPART.match(localpart):
        raise InvalidIdentifier("User ID can only contain characters a-z, 0-9, or '._=-/+'")
    if len(f"@{localpart}:{server_name}".encode()) > MAX_USER_ID_BYTES:
        raise InvalidIdentifier("User ID may not be longer than 255 characters")
