"""The server's ed25519 signing key, kept in the data directory in Synapse's file format.

Spec: server-server-api, "Retrieving server keys" (key IDs); appendices, "Signing JSON".
"""
from __future__ import annotations

import base64
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import nacl.signing


@dataclass(frozen=True)
class ServerSigningKey:
    key_id: str                       # "ed25519:<version>"
    signing_key: nacl.signing.SigningKey

    @property
    def verify_key_base64(self) -> str:
        return base64.b64encode(bytes(self.signing_key.verify_key)).decode().rstrip("=")


def _decode_unpadded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def load_or_create_signing_key(path: Path) -> ServerSigningKey:
    """Read `ed25519 <version> <seed>` from `path`, creating the file (mode 0600) if missing."""
    if path.exists():
        parts = path.read_text(encoding="ascii").split()
        if len(parts) != 3 or parts[0] != "ed25519":
            raise ValueError(f"{path}: expected 'ed25519 <version> <base64 seed>'")
        seed = _decode_unpadded(parts[2])
        if len(seed) != 32:
            raise ValueError(f"{path}: the seed is not 32 bytes")
        return ServerSigningKey(f"ed25519:{parts[1]}", nacl.signing.SigningKey(seed))
    version = "a_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
    key = nacl.signing.SigningKey.generate()
    seed_b64 = base64.b64encode(bytes(key)).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"ed25519 {version} {seed_b64}\n")
        f.flush()
        os.fsync(f.fileno())
    return ServerSigningKey(f"ed25519:{version}", key)
