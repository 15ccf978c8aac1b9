"""The app's ASGI connection: a body that never completes and a client that never reads are both cut off."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from pocketserver.client.asgi import HTTPConnection


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"), (b"content-length", b"100")],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8008)}


async def test_a_body_that_never_completes_is_answered_408(app_factory) -> None:
    app = app_factory()
    app.config["BODY_TIMEOUT"] = 0.2
    assert issubclass(app.asgi_http_class, HTTPConnection)
    sent: list[dict[str, Any]] = []
    parts = [{"type": "http.request", "body": b'{"type": ', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop()
        await asyncio.Event().wait()          # the rest of the body never comes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.test_app():
        connection = app.asgi_http_class(app, _scope("POST", "/_matrix/client/v3/login"))
        await asyncio.wait_for(connection(receive, send), 5)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["errcode"]


async def test_a_client_that_never_reads_the_response_is_dropped(app_factory) -> None:
    app = app_factory()
    app.config["RESPONSE_TIMEOUT"] = 0.2
    started: list[int] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])
        await asyncio.Event().wait()          # the socket's buffer is full and stays full

    async with app.test_app():
        connection = HTTPConnection(app, _scope("GET", "/_matrix/client/versions"))
        # handle_request gives up on the send after RESPONSE_TIMEOUT instead of waiting for ever.
        await asyncio.wait_for(connection.handle_request(connection._create_request_from_scope(send), send), 5)
    assert started == [200]
