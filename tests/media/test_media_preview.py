"""URL previews: address checks against SSRF, Open Graph parsing, bounded fetching.

Spec: client-server-api, "GET /_matrix/client/v1/media/preview_url".
"""
from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
from typing import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image

from pocketserver.errors import Forbidden, InvalidParam
from pocketserver.media import preview
from pocketserver.media.preview import (BadGateway, SafeResolver, UrlPreviewer, check_url,
                                        is_public_address, parse_open_graph)

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.mark.parametrize("address,public", [
    ("93.184.216.34", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("240.0.0.1", False), ("::1", False), ("fe80::1", False),
    ("fc00::1", False), ("ff02::1", False), ("::", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("2002:7f00:1::", False), ("192.0.2.1", False),
])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_check_url() -> None:
    resolver = SafeResolver()
    assert check_url("https://example.org/a?b=c", resolver) == "https://example.org/a?b=c"
    for bad in ("ftp://example.org/", "file:///etc/passwd", "javascript:alert(1)", "http:///x",
                "http://example.org:99999/", "gopher://127.0.0.1:6379/"):
        with pytest.raises(InvalidParam):
            check_url(bad, resolver)
    for blocked in ("http://127.0.0.1/", "http://[::1]:8008/", "http://169.254.169.254/latest/meta-data",
                    "http://10.0.0.1/", "http://[::ffff:192.168.0.1]/", "http://0.0.0.0:8008/"):
        with pytest.raises(Forbidden):
            check_url(blocked, resolver)


async def test_resolver_refuses_names_of_private_addresses() -> None:
    with pytest.raises(preview.BlockedAddress):
        await SafeResolver().resolve("localhost", 80)
    # Allowing 127.0.0.1 alone still refuses localhost when it also resolves to ::1.
    results = await SafeResolver(LOOPBACK_ONLY + (ipaddress.ip_network("::1/128"),)).resolve("localhost", 80)
    assert {r["host"] for r in results} <= {"127.0.0.1", "::1"}


def test_open_graph_parsing() -> None:
    html = """<html><head><title> The  page </title>
    <meta property="og:title" content="OG title"><meta property="og:description" content="Words &amp; more">
    <meta name="description" content="plain description"><meta property="og:image" content="/img.png">
    <meta property="og:site_name" content="Site"><meta property="fb:app_id" content="123">
    </head><body><p>text</p><script>var og = "<meta property='og:x' content='no'>";</script></body></html>"""
    og = parse_open_graph(html)
    assert og == {"og:title": "OG title", "og:description": "Words & more", "og:image": "/img.png",
                  "og:site_name": "Site"}
    assert parse_open_graph("<title>Only a title</title><meta name=description content=d>") == {
        "og:title": "Only a title", "og:description": "d"}
    assert parse_open_graph("<<<<not html at all") == {}
    long = parse_open_graph(f'<meta property="og:title" content="{"x" * 5000}">')
    assert len(long["og:title"]) == preview.MAX_OG_VALUE


@pytest.fixture
async def site() -> AsyncIterator[str]:
    png = io.BytesIO()
    Image.new("RGB", (48, 32), "blue").save(png, format="PNG")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text='<html><head><meta property="og:title" content="Hello">'
                                 '<meta property="og:image" content="/logo.png"></head></html>',
                            content_type="text/html")

    async def logo(request: web.Request) -> web.Response:
        return web.Response(body=png.getvalue(), content_type="image/png")

    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:1/")

    async def to_internal_name(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://intranet.example/")

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        chunk = b"<p>" + b"x" * 65536
        for _ in range(200):      # 13 MB, far past MAX_PAGE_BYTES
            await resp.write(chunk)
        return resp

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/logo.png", logo)
    app.router.add_get("/to-private", to_private)
    app.router.add_get("/to-internal-name", to_internal_name)
    app.router.add_get("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_fetch_page_with_image_and_blocked_redirects(site: str, monkeypatch) -> None:
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo

    async def fake_getaddrinfo(host: str, port: int, **kwargs: object) -> list:
        if host == "intranet.example":   # a public name whose DNS answer is an internal address
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return await real_getaddrinfo(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    saved: list[tuple[bytes, str]] = []

    async def save(data: bytes, media_type: str, name: str | None) -> str:
        saved.append((data, media_type))
        return "mxc://test.local/previewimage"

    previewer = UrlPreviewer(save, allowed=LOOPBACK_ONLY)
    og = await previewer.preview(f"{site}/page")
    assert og["og:title"] == "Hello" and og["og:image"] == "mxc://test.local/previewimage"
    assert og["og:image:type"] == "image/png" and (og["og:image:width"], og["og:image:height"]) == (48, 32)
    assert og["matrix:image:size"] == len(saved[0][0])
    assert await previewer.preview(f"{site}/page") is og   # cached

    with pytest.raises(Forbidden):
        await previewer.preview(f"{site}/to-private")      # the redirect target is checked too
    with pytest.raises(Forbidden):
        await previewer.preview(f"{site}/to-internal-name")   # ...and names are resolved and checked
    assert (await previewer.preview(f"{site}/huge")) == {}   # bounded read, nothing to show
    with pytest.raises(BadGateway):
        await previewer.preview(f"{site}/missing")
    # Without the test allowance, the loopback site itself is refused.
    with pytest.raises(Forbidden):
        await UrlPreviewer(save).preview(f"{site}/page")
