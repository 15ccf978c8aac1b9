"""The server's ed25519 signing key, kept in the data directory in Synapse's file format.

Spec: server-server-api, "Retrieving server keys" (key IDs); appendices, "Signing JSON".
"""
from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from pocketserver.rooms.hashing import decode_base64, encode_unpadded_base64
from pocketserver.rooms.signing import SigningKey


class SigningKeyError(Exception):
    """The signing key cannot be used: unreadable, or missing beside a database that needs it."""


def load_or_create_signing_key(path: Path, *, create: bool = True) -> SigningKey:
    """Read `ed25519 <version> <seed>` from `path`, creating the file (mode 0600) if missing and
    `create` (a new data directory: a key made beside an existing database would silently give
    the server another identity, and end every OpenID token made with the old one)."""
    if path.exists():
        try:
            parts = path.read_text(encoding="ascii").split()
            seed = decode_base64(parts[2]) if len(parts) == 3 and parts[0] == "ed25519" else b""
        except (UnicodeDecodeError, ValueError):
            seed = b""
        if len(seed) != 32:
            raise SigningKeyError(f"{path} is not a signing key (expected 'ed25519 <version> <base64 seed>' "
                                  "with a 32-byte seed): put the server's key back from a backup")
        return SigningKey.from_seed(seed, parts[1])
    if not create:
        raise SigningKeyError(f"the signing key {path} is missing, but the database beside it exists: put the key "
                              "back from a backup (a new key would change the server's identity)")
    version = "a_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
    key = SigningKey.generate(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"ed25519 {version} {encode_unpadded_base64(key.seed)}\n")
        f.flush()
        os.fsync(f.fileno())
    return key
