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


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Read `ed25519 <version> <seed>` from `path`, creating the file (mode 0600) if missing."""
    if path.exists():
        parts = path.read_text(encoding="ascii").split()
        if len(parts) != 3 or parts[0] != "ed25519":
            raise ValueError(f"{path}: expected 'ed25519 <version> <base64 seed>'")
        seed = decode_base64(parts[2])
        if len(seed) != 32:
            raise ValueError(f"{path}: the seed is not 32 bytes")
        return SigningKey.from_seed(seed, parts[1])
    version = "a_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
    key = SigningKey.generate(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"ed25519 {version} {encode_unpadded_base64(key.seed)}\n")
        f.flush()
        os.fsync(f.fileno())
    return key
