"""The registration token's fallback web page, for clients that cannot ask for a token themselves.

Spec: client-server-api, "User-interactive authentication API", "Fallback".
"""
from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from tests.js_client import JsClient

REGISTER = "/_matrix/client/v3/register"
FALLBACK = "/_matrix/client/v3/auth/m.login.registration_token/fallback/web"


async def page(api, method: str, query: dict[str, str] | None = None, form: dict[str, str] | None = None):
    """The page as a browser gets it: status, headers and HTML."""
    resp = await api.client.open(FALLBACK, method=method, query_string=query, form=form)
    return resp.status_code, resp.headers, await resp.get_data(as_text=True)


async def start_registration(api, username: str) -> str:
    status, body = await api.call("POST", REGISTER, {"username": username, "password": "pw"})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.registration_token", "m.login.dummy"]}], body
    return body["session"]


async def test_a_person_enters_the_token_in_a_browser(api) -> None:
    token = await api.server.registration.create_token(None, 1, None)
    session = await start_registration(api, "dora")

    status, headers, html = await page(api, "GET", {"session": session})
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"] and "script-src 'sha256-" in headers[
        "Content-Security-Policy"]
    assert re.search(r'<input type="hidden" name="session" value="([^"]+)">', html).group(1) == session

    status, _, html = await page(api, "POST", form={"session": session, "token": "wrong"})
    assert status == 200 and "not valid" in html and "authDone" not in html
    status, body = await api.call("POST", REGISTER, {"username": "dora", "password": "pw", "auth": {"session": session}})
    assert status == 401 and "completed" not in body

    status, headers, html = await page(api, "POST", form={"session": session, "token": token})
    assert status == 200
    assert 'window.opener.postMessage("authDone", "*")' in html and "window.onAuthDone()" in html
    # A browser runs the script only because the policy names its hash.
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in headers["Content-Security-Policy"]

    # The client resubmits with the session alone: the token stage is done; the dummy stage is next.
    status, body = await api.call("POST", REGISTER, {"username": "dora", "password": "pw", "auth": {"session": session}})
    assert status == 401 and body["completed"] == ["m.login.registration_token"], body
    status, body = await api.call("POST", REGISTER, {"username": "dora", "password": "pw",
                                                    "auth": {"type": "m.login.dummy", "session": session}})
    assert status == 200 and body["user_id"] == "@dora:test.local", body
    # The token's one use is spent.
    assert not await api.server.registration.token_valid(token)


async def test_refusals_and_escaping(api) -> None:
    token = await api.server.registration.create_token(None, 5, None)
    status, _, html = await page(api, "GET")
    assert status == 400 and "No session" in html
    status, _, html = await page(api, "POST", form={"session": "no-such-session", "token": token})
    assert status == 400 and "Unknown or expired session" in html and "authDone" not in html
    hostile = '"><script>alert(1)</script>'
    status, _, html = await page(api, "GET", {"session": hostile})
    assert "<script>alert" not in html and "&quot;&gt;&lt;script&gt;" in html
    # Stages without a page: 404 M_UNRECOGNIZED.
    for stage in ("m.login.password", "m.login.dummy", "m.login.recaptcha"):
        status, body = await api.call("GET", FALLBACK.replace("m.login.registration_token", stage),
                                      query={"session": "s"})
        assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED"), stage


async def test_no_token_page_when_no_token_is_asked(make_api) -> None:
    api = await make_api(registration_requires_token=False, enable_registration=True)
    status, body = await api.call("POST", REGISTER, {"username": "erin", "password": "pw"})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.dummy"]}]
    status, _, html = await page(api, "POST", form={"session": body["session"], "token": "anything"})
    assert status == 403 and "does not ask for a registration token" in html


async def test_js_sdk_opens_this_page() -> None:
    js = await JsClient.start()
    try:
        url = (await js.call("fallbackAuthUrl", baseUrl="http://127.0.0.1:8008",
                             loginType="m.login.registration_token", session="abc"))["url"]
    finally:
        await js.close()
    parts = urlsplit(url)
    assert (parts.path, parts.query) == (FALLBACK, "session=abc")
