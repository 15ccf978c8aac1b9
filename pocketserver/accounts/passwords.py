"""Argon2id password hashing with PyNaCl, off the event loop and with bounded concurrency.

Defaults (opslimit 2, memlimit 19 MiB) follow OWASP's Argon2id baseline: about 0.2 s per hash on a
Raspberry Pi 4, and at most `concurrency` hashes (19 MiB each) in memory at once.
"""
from __future__ import annotations

import asyncio

MAX_PASSWORD_BYTES = 512


class PasswordHasher:
    """Hashes and checks passwords in worker threads."""

    def __init__(self, opslimit: int = 2, memlimit_kib: int = 19_456, concurrency: int = 2) -> None:
        self._opslimit = opslimit
        self._memlimit = memlimit_kib * 1024
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: bytes | None = None

    def hash_sync(self, password: str) -> str:
        import nacl.pwhash   # at the first hash, not at start-up
        return nacl.pwhash.argon2id.str(password.encode(), opslimit=self._opslimit,
                                        memlimit=self._memlimit).decode()

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_sync, password)

    @staticmethod
    def verify_sync(stored: str, password: str) -> bool:
        import nacl.exceptions
        import nacl.pwhash
        try:
            return nacl.pwhash.verify(stored.encode(), password.encode())
        except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """Check `password` against `stored`; with no stored hash, spend the same time and fail."""
        async with self._slots:
            if stored is None:
                if self._dummy is None:
                    self._dummy = (await asyncio.to_thread(self.hash_sync, "not a password")).encode()
                await asyncio.to_thread(self.verify_sync, self._dummy.decode(), password)
                return False
            return await asyncio.to_thread(self.verify_sync, stored, password)
