"""The push gateway client: POST /_matrix/push/v1/notify.

Spec: push-gateway-api, "POST /_matrix/push/v1/notify".
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:   # aiohttp is imported on first use: it costs ~0.1 s of start-up otherwise
    import aiohttp

NOTIFY_PATH = "/_matrix/push/v1/notify"
TIMEOUT_S = 15.0
MAX_RESPONSE_BYTES = 64 * 1024


class GatewayError(Exception):
    """A notify call failed; `permanent` when retrying cannot help (the gateway refused the request)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_valid_notify_url(url: Any) -> bool:
    """An http(s) URL with a host whose path is /_matrix/push/v1/notify.

    Spec: client-server-api, "POST /_matrix/client/v3/pushers/set" (`data.url`). Plain http is
    accepted, as Synapse does, for gateways on the LAN.
    """
    if not isinstance(url, str) or len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok
            and parts.path == NOTIFY_PATH and not parts.fragment and parts.username is None)


class Gateway:
    """Sends notify requests over one aiohttp session."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def notify(self, url: str, notification: dict[str, Any]) -> list[str]:
        """POST one notification; returns the pushkeys the gateway rejected.

        Raises GatewayError: permanent for a 4xx other than 408/429, transient otherwise.
        """
        import aiohttp
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        try:
            # No redirects: the URL the user gave is the only place their notifications go.
            async with self._session.post(url, json={"notification": notification}, allow_redirects=False) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES)
                if 200 <= resp.status < 300:
                    return _rejected(raw)
                permanent = 400 <= resp.status < 500 and resp.status not in (408, 429)
                raise GatewayError(f"gateway answered {resp.status}", permanent=permanent)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise GatewayError(f"gateway unreachable: {type(exc).__name__}", permanent=False) from None


def _rejected(raw: bytes) -> list[str]:
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return []
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return [k for k in rejected if isinstance(k, str)] if isinstance(rejected, list) else []
