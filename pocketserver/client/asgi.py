"""The app's request and ASGI connection classes: Quart's, with their timeouts taken in the caller's task.

Quart bounds reading a request body (BODY_TIMEOUT) and sending a response (RESPONSE_TIMEOUT)
with `asyncio.wait_for`, which on Python 3.11 runs the awaited body or coroutine in a Task of
its own: two more tasks per request, each created, scheduled and run on a later turn of the
event loop. `asyncio.timeout` bounds the same awaits inside the request's own task, with the same
outcome when time runs out (RequestTimeout for a body, a dropped response for a send).
"""
from __future__ import annotations

import asyncio
from typing import Any, cast

from quart.asgi import ASGIHTTPConnection
from quart.debug import traceback_response
from quart.wrappers import Response
from quart.wrappers.request import Request as QuartRequest
from werkzeug.exceptions import RequestTimeout


class Request(QuartRequest):
    """A request whose body is read within BODY_TIMEOUT without a task of its own."""

    async def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                       parse_form_data: bool = False) -> str | bytes:
        if parse_form_data:
            await self._load_form_data()
        try:
            async with asyncio.timeout(self.body_timeout):
                raw: bytes = await self.body
        except TimeoutError as e:
            raise RequestTimeout() from e
        if not cache:
            self.body.clear()
        return raw.decode() if as_text else raw


class HTTPConnection(ASGIHTTPConnection):
    """Sends each response within its timeout (RESPONSE_TIMEOUT by default) without a task of its own."""

    async def handle_request(self, request: QuartRequest, send: Any) -> None:
        try:
            response = await self.app.handle_request(request)
        except Exception as error:  # as Quart's: the app has answered errors already, unless testing
            if not (self.app.debug or self.app.testing):
                raise
            response = await traceback_response(error)
        timeout = (cast(float | None, response.timeout)
                   if isinstance(response, Response) and response.timeout is not Ellipsis
                   else self.app.config["RESPONSE_TIMEOUT"])
        try:
            async with asyncio.timeout(timeout):
                await self._send_response(send, response)
        except TimeoutError:
            pass
