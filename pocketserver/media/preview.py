"""URL previews: fetch a page without reaching private networks, and read its Open Graph data.

Spec: client-server-api, "GET /_matrix/client/v1/media/preview_url".

Off by default (url_preview_enabled). Every address a request would connect to is checked, for
the first URL and for each redirect: the host is resolved once, every address must be public
(no loopback, private, link-local, multicast, reserved or unspecified address, IPv4-mapped
included), and the connection goes to exactly the addresses that were checked, so a second DNS
answer cannot swap in an internal one. Bodies and time are bounded.
"""
from __future__ import annotations

import asyncio
import codecs
import io
import ipaddress
import logging
import socket
import time
from html.parser import HTMLParser
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from pocketserver.errors import Forbidden, InvalidParam, MatrixError

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
FETCH_TIMEOUT_S = 10.0
CACHE_TTL_S = 3600.0
CACHE_ENTRIES = 1000
MAX_OG_VALUE = 1000
MAX_OG_KEYS = 50
HTML_TYPES = ("text/html", "application/xhtml+xml")
USER_AGENT = "pocketserver URL preview (Matrix homeserver)"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SaveMedia = Callable[[bytes, str, str | None], Awaitable[str]]


class BadGateway(MatrixError):
    errcode, status = "M_UNKNOWN", 502


class BlockedAddress(OSError):
    """The URL's host is, or resolves to, an address previews must not reach."""


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_reserved or ip.is_unspecified)


class SafeResolver(AbstractResolver):
    """Resolves a host and refuses it unless every address is public (or explicitly allowed)."""

    def __init__(self, allowed: tuple[IpNetwork, ...] = ()) -> None:
        self._allowed = allowed

    def permitted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return any(ip in net for net in self._allowed) or is_public_address(ip)

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=socket.AF_UNSPEC)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not self.permitted(address):
                raise BlockedAddress(f"{host} resolves to a blocked address")
            results.append({"hostname": host, "host": address, "port": port, "family": fam,
                            "proto": proto, "flags": socket.AI_NUMERICHOST})
        if not results:
            raise OSError(f"{host} has no addresses")
        return results

    async def close(self) -> None:
        return None


def check_url(url: str, resolver: SafeResolver) -> str:
    """The URL if it is http(s) with a host; literal addresses are checked here (no DNS needed)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidParam("Invalid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise InvalidParam("Only http and https URLs with a host can be previewed")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    if not resolver.permitted(str(literal)):
        raise Forbidden("URL blocked: it points to a private address")
    return url


class OpenGraphParser(HTMLParser):
    """Collects og:* meta tags, <title> and the meta description from an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or "").strip()
            content = a.get("content", "").strip()[:MAX_OG_VALUE]
            if key.startswith("og:") and content and len(self.og) < MAX_OG_KEYS:
                self.og.setdefault(key[:100], content)
            elif key.lower() == "description" and content and self.description is None:
                self.description = content
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = " ".join("".join(self._title_parts).split())[:MAX_OG_VALUE]


def parse_open_graph(html: str) -> dict[str, str]:
    """Open Graph data of a page, with <title> and the meta description as fallbacks."""
    parser = OpenGraphParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:   # html.parser is lenient; never let a page break a preview
        log.debug("HTML parse stopped early", exc_info=True)
    og = dict(parser.og)
    if "og:title" not in og and parser.title:
        og["og:title"] = parser.title
    if "og:description" not in og and parser.description:
        og["og:description"] = parser.description
    return og


def _was_blocked(exc: BaseException | None) -> bool:
    """Whether a BlockedAddress caused `exc` (aiohttp wraps resolver errors in its own)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, BlockedAddress):
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "GIF", "WEBP")) as img:
            return img.size
    except Exception:
        return None


class UrlPreviewer:
    """Fetches URLs for previews, caching results for an hour."""

    def __init__(self, save_media: SaveMedia, *, allowed: tuple[IpNetwork, ...] = ()) -> None:
        self._save_media = save_media
        self.resolver = SafeResolver(allowed)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def preview(self, url: str) -> dict[str, Any]:
        """Spec: getUrlPreviewAuthed."""
        check_url(url, self.resolver)
        cached = self._cache.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        connector = aiohttp.TCPConnector(resolver=self.resolver, use_dns_cache=False, limit=4)
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S, sock_connect=5)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                             headers={"User-Agent": USER_AGENT}) as session:
                result = await self._preview(session, url)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            if _was_blocked(exc):
                raise Forbidden("URL blocked: it points to a private address") from None
            log.info("URL preview fetch failed: %s", type(exc).__name__)
            raise BadGateway("Failed to download content for the preview") from None
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[url] = (time.monotonic() + CACHE_TTL_S, result)
        return result

    async def _preview(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        final_url, content_type, body = await self._fetch(session, url)
        media_type = _media_type(content_type)
        if media_type.startswith("image/"):
            return await self._image_fields(body, media_type) if len(body) <= MAX_IMAGE_BYTES else {}
        if media_type not in HTML_TYPES:
            return {}
        html = body[:MAX_PAGE_BYTES].decode(_charset(content_type), errors="replace")
        og: dict[str, Any] = await asyncio.to_thread(parse_open_graph, html)
        image_url = og.pop("og:image", None) or og.pop("og:image:url", None)
        for key in ("og:image:type", "og:image:width", "og:image:height", "og:image:secure_url"):
            og.pop(key, None)
        if image_url:
            og.update(await self._page_image(session, urljoin(final_url, image_url)))
        return og

    async def _page_image(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        try:
            check_url(url, self.resolver)
            _, content_type, body = await self._fetch(session, url)
        except (MatrixError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return {}
        media_type = _media_type(content_type)
        if not media_type.startswith("image/") or len(body) > MAX_IMAGE_BYTES:
            return {}
        return await self._image_fields(body, media_type)

    async def _image_fields(self, body: bytes, media_type: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"og:image": await self._save_media(body, media_type, None),
                                  "og:image:type": media_type, "matrix:image:size": len(body)}
        size = await asyncio.to_thread(_image_size, body)
        if size:
            fields["og:image:width"], fields["og:image:height"] = size
        return fields

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> tuple[str, str, bytes]:
        """GET `url`, following up to MAX_REDIRECTS redirects (each one checked).

        Reads at most one byte past the bound for the content type (none for other types).
        """
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = check_url(urljoin(url, resp.headers["Location"]), self.resolver)
                    continue
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                content_type = resp.headers.get("Content-Type", "")
                media_type = _media_type(content_type)
                limit = (MAX_IMAGE_BYTES if media_type.startswith("image/")
                         else MAX_PAGE_BYTES if media_type in HTML_TYPES else -1)
                if limit < 0:
                    return url, content_type, b""
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        break
                return url, content_type, bytes(body)
        raise aiohttp.TooManyRedirects(resp.request_info, ())
