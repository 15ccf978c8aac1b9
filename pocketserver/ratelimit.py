"""Token-bucket rate limits, kept in memory per (action, key).

Spec: client-server-api, "Rate limiting" (M_LIMIT_EXCEEDED with retry_after_ms).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pocketserver.errors import LimitExceeded

MAX_TRACKED_KEYS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `burst` actions at once, refilled at `per_second`; one limiter per action."""

    def __init__(self, per_second: float, burst: int, *, clock=time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.per_second
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]

    def check(self, key: str) -> None:
        """Raise LimitExceeded if `key` has no action left; does not spend one."""
        bucket = self._refilled(key)
        if bucket.tokens < 1:
            wait_ms = int((1 - bucket.tokens) / self.per_second * 1000) + 1
            raise LimitExceeded("Too many requests", retry_after_ms=wait_ms)

    def spend(self, key: str) -> None:
        """Take one action for `key`, raising LimitExceeded when none is left."""
        self.check(key)
        self._buckets[key].tokens -= 1

    def refund(self, key: str) -> None:
        """Give back an action spent ahead of knowing whether it counts."""
        bucket = self._refilled(key)
        bucket.tokens = min(self.burst, bucket.tokens + 1)
