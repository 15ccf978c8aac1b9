"""Stream tokens: one opaque string holding a position in every stream.

Sync's `next_batch`/`prev_batch` and /messages' `start`/`end` share this format, so they interoperate.
Spec: client-server-api, "Syncing" and "Pagination".
"""
from __future__ import annotations

from typing import NamedTuple

from pocketserver.errors import MatrixError

PREFIX = "ps1"


class InvalidToken(MatrixError):
    errcode, status = "M_INVALID_PARAM", 400


class StreamToken(NamedTuple):
    """A position in each stream (events, account data, to-device, receipts, typing, presence, device lists)."""

    events: int = 0
    account_data: int = 0
    to_device: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    device_lists: int = 0

    def serialize(self) -> str:
        return "_".join([PREFIX, *(str(v) for v in self)])

    @classmethod
    def parse(cls, text: str) -> "StreamToken":
        parts = text.split("_") if isinstance(text, str) else []
        names = cls._fields
        if not parts or parts[0] != PREFIX or len(parts) != len(names) + 1 or not all(p.isascii() and p.isdigit() for p in parts[1:]):
            raise InvalidToken("Invalid stream token")
        values = [int(p) for p in parts[1:]]
        if any(v > 2**62 for v in values):
            raise InvalidToken("Invalid stream token")
        return cls(*values)

    def with_events(self, position: int) -> "StreamToken":
        return self._replace(events=position)
