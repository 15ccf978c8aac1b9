"""Fixtures for in-process HTTP tests through Quart's test client."""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest


class Api:
    """A thin JSON client over Quart's test client."""

    def __init__(self, client: Any, server: Any) -> None:
        self.client = client
        self.server = server

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   raw: bytes | None = None, query: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": hdrs, "query_string": query}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        resp = await self.client.open(path, method=method, **kwargs)
        return resp.status_code, await resp.get_json(force=True, silent=True)

    async def register(self, username: str, password: str = "pw", **extra: Any) -> dict[str, Any]:
        """Register with a fresh token through the full UIA flow."""
        token = await self.server.registration.create_token(None, 1, None)
        status, body = await self.call("POST", "/_matrix/client/v3/register", {"username": username,
                                       "password": password, **extra})
        assert status == 401, body
        session = body["session"]
        status, body = await self.call("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, **extra,
            "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
        assert status == 401 and body["completed"] == ["m.login.registration_token"], body
        status, body = await self.call("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, **extra,
            "auth": {"type": "m.login.dummy", "session": session}})
        assert status == 200, body
        return body


@pytest.fixture
async def make_api(app_factory):
    """Start an in-process app with overrides; returns an Api bound to it."""
    contexts = []

    async def make(**overrides: Any) -> Api:
        app = app_factory(**overrides)
        ctx = app.test_app()
        test_app = await ctx.__aenter__()
        contexts.append(ctx)
        return Api(test_app.test_client(), app.config["POCKETSERVER"])

    yield make
    for ctx in reversed(contexts):
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def api(make_api) -> AsyncIterator[Api]:
    yield await make_api()
