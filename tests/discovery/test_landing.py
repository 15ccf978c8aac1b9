"""GET /: the landing page, through the in-process app (no network, no multicast)."""
from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from pocketserver.discovery import announce

from tests.conftest import SHARED_SECRET


async def get_page(make_api: Any, **overrides: Any) -> tuple[Any, str, Any]:
    api = await make_api(**overrides)
    resp = await api.client.get("/")
    return resp, (await resp.get_data()).decode(), api.server


async def test_landing_page_shows_server_name_client_url_and_discovery(make_api: Any) -> None:
    resp, page, _ = await get_page(make_api, public_baseurl="https://chat.example.org/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>test.local</h1>" in page
    assert "<code>https://chat.example.org</code>" in page
    assert "LAN discovery is off" in page
    assert SHARED_SECRET not in page


async def test_landing_page_has_a_strict_csp_that_allows_only_its_own_style(make_api: Any) -> None:
    resp, page, _ = await get_page(make_api)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "script" not in page.lower()
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_landing_page_escapes_everything(make_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The announcer never gets a socket: starting it is a no-op, so nothing is multicast.
    monkeypatch.setattr(announce.Announcer, "start", lambda self: None)
    hostile = '<script>alert("x")</script>&'
    resp, page, server = await get_page(make_api, lan_discovery=True, lan_discovery_name=hostile,
                                        public_baseurl='http://example.org/"><script>x</script>')
    assert resp.status_code == 200
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "http://example.org/&quot;&gt;&lt;script&gt;x&lt;/script&gt;" in page
    assert server.announcer is not None and not server.announcer.announced
    assert "not announced right now" in page


async def test_landing_page_shows_the_name_in_use_after_a_conflict(make_api: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(announce.Announcer, "start", lambda self: None)
    api = await make_api(lan_discovery=True, lan_discovery_name="Home")
    announcer = api.server.announcer
    monkeypatch.setattr(announce.Announcer, "announced", property(lambda self: True))
    monkeypatch.setattr(announce.Announcer, "names", property(lambda self: {announce.PRIMARY_TYPE: "Home-2"}))
    assert announcer.name == "Home-2"
    resp = await api.client.get("/")
    page = (await resp.get_data()).decode()
    assert "announced as \u201cHome-2\u201d" in page


async def test_server_serves_when_zeroconf_cannot_start(make_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, config: Any, host_id: bytes) -> None:
        raise RuntimeError("zeroconf is broken")
    monkeypatch.setattr(announce.Announcer, "__init__", broken)
    api = await make_api(lan_discovery=True)
    assert api.server.announcer is None
    status, body = await api.call("GET", "/_matrix/client/versions")
    assert status == 200
    resp = await api.client.get("/")
    assert resp.status_code == 200
