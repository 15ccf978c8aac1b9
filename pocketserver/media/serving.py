"""HTTP for media: safe response headers, Range requests, and streaming request bodies to disk.

Spec: client-server-api, "Content repository" (Content-Security-Policy,
Cross-Origin-Resource-Policy) and "Serving inline content"; RFC 9110 "Range Requests".
"""
from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any, AsyncIterator, BinaryIO, ClassVar
from urllib.parse import quote

from quart import Quart, Response
from quart.wrappers.request import Body

from pocketserver.client.asgi import HTTPConnection, Request

# Spec: "Content repository": the recommended policy, plus media-src 'self' as Synapse sends.
CONTENT_SECURITY_POLICY = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
                           "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")

# Spec: "Serving inline content": the only types served with `Content-Disposition: inline`.
INLINE_CONTENT_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave", "audio/wav",
    "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac"})

# RFC 9110 token characters: a filename of only these needs no quoting or encoding.
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# RFC 8187 attr-char, left unencoded in filename*=.
_ATTR_CHAR_SAFE = "!#$&+.^_`|~-"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
READ_CHUNK = 256 * 1024
UPLOAD_PATH = re.compile(r"/_matrix/media/(?:v3|r0|v1)/upload(?:/[^/]+/[^/]+)?/?")
UPLOAD_HIGH_WATER = 1024 * 1024
UPLOAD_IDLE_TIMEOUT_S = 60.0


def base_media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_inline_type(content_type: str | None) -> bool:
    return base_media_type(content_type) in INLINE_CONTENT_TYPES


def content_disposition(inline: bool, filename: str | None) -> str:
    """A Content-Disposition value that no filename can break out of (RFC 6266, RFC 8187).

    A filename of token characters is sent as is; anything else is percent-encoded UTF-8 in
    filename*=, so quotes, semicolons, CR, LF and other controls never reach the header.
    """
    value = "inline" if inline else "attachment"
    if not filename:
        return value
    if _TOKEN.fullmatch(filename):
        return f"{value}; filename={filename}"
    return f"{value}; filename*=utf-8''{quote(filename, safe=_ATTR_CHAR_SAFE)}"


def serving_content_type(content_type: str | None) -> str:
    """The Content-Type to send: the uploader's, charset added to text, octet-stream when unusable.

    Spec: getContentAuthed, "Content-Type" (what is reasonably close to the upload's type).
    """
    value = (content_type or "").strip()
    if not value or not re.fullmatch(r"[\x21-\x7e][\x20-\x7e]*", value) or "/" not in value:
        return "application/octet-stream"
    if base_media_type(value).startswith("text/") and "charset" not in value.lower():
        return f"{value}; charset=utf-8"
    return value


def media_headers(*, authenticated: bool) -> dict[str, str]:
    """Headers every media response carries, errors aside."""
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
        # A document opened from media (a PDF, an SVG) tells no one where it was opened from (as Synapse).
        "Referrer-Policy": "no-referrer",
        # Responses to authenticated requests must not sit in shared caches.
        "Cache-Control": "private, max-age=86400" if authenticated
        else "public, max-age=86400, s-maxage=86400",
    }


def parse_range(header: str | None, length: int) -> tuple[int, int] | None | str:
    """The one byte range asked for as (first, last), None to send everything, "unsatisfiable".

    RFC 9110 "Range": a malformed or multi-part Range header may be ignored, and is.
    """
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else length - 1
        if m.group(2) and last < first:
            return None
        if first >= length:
            return "unsatisfiable"
        return first, min(last, length - 1)
    suffix = int(m.group(2))
    if suffix == 0 or length == 0:
        return "unsatisfiable"
    return max(0, length - suffix), length - 1


class FileChunks:
    """An async iterator over [first, last] of an open file, read in a thread, closed at the end."""

    def __init__(self, file: BinaryIO, first: int, count: int) -> None:
        self._file, self._pos, self._remaining = file, first, count

    def __aiter__(self) -> "FileChunks":
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0:
            await self.aclose()
            raise StopAsyncIteration
        chunk = await asyncio.to_thread(self._read, min(READ_CHUNK, self._remaining))
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        self._remaining -= len(chunk)
        return chunk

    def _read(self, n: int) -> bytes:
        self._file.seek(self._pos)
        data = self._file.read(n)
        self._pos += len(data)
        return data

    async def aclose(self) -> None:
        self._file.close()


def file_response(path: Path, *, content_type: str, disposition: str, etag: str | None,
                  request_headers: Any, authenticated: bool, head: bool = False) -> Response:
    """Stream the file at `path`, honouring Range, If-Range and If-None-Match.

    Raises FileNotFoundError when the file is gone, before any byte is sent.
    """
    file = open(path, "rb")
    length = os.fstat(file.fileno()).st_size
    headers = {**media_headers(authenticated=authenticated), "Content-Disposition": disposition,
               "Accept-Ranges": "bytes"}
    if etag:
        headers["ETag"] = f'"{etag}"'
        if request_headers.get("If-None-Match") in (f'"{etag}"', f'W/"{etag}"', "*"):
            file.close()
            return Response(b"", status=304, headers=headers)
    wanted = parse_range(request_headers.get("Range"), length)
    if_range = request_headers.get("If-Range")
    if if_range is not None and (not etag or if_range != f'"{etag}"'):
        wanted = None
    if wanted == "unsatisfiable":
        file.close()
        resp = Response(b'{"errcode":"M_UNKNOWN","error":"Requested range not satisfiable"}',
                        status=416, content_type="application/json",
                        headers={**headers, "Content-Range": f"bytes */{length}"})
        return resp
    status, first, last = 200, 0, length - 1
    if isinstance(wanted, tuple):
        status, (first, last) = 206, wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{length}"
    count = max(0, last - first + 1)
    if head:
        file.close()
        body: Any = []     # an iterable, so Quart leaves our Content-Length alone
    else:
        body = FileChunks(file, first, count)
    resp = Response(body, status=status, headers=headers, content_type=content_type)
    resp.headers["Content-Length"] = str(count)
    resp.timeout = None   # a large file to a slow phone may take longer than RESPONSE_TIMEOUT
    return resp


class UploadBody(Body):
    """A request body with backpressure: the receiver stops reading once a megabyte waits.

    Quart's Body buffers whatever arrives; for uploads that would hold a whole file in memory
    whenever the network is faster than the disk.
    """

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._drained = asyncio.Event()
        self._drained.set()

    def append(self, data: bytes) -> None:
        super().append(data)
        if len(self._data) >= UPLOAD_HIGH_WATER and self._must_raise is None:
            self._drained.clear()

    async def __anext__(self) -> bytes:
        try:
            return await super().__anext__()
        finally:
            self._drained.set()

    async def wait_drained(self) -> None:
        await self._drained.wait()


class UploadRequest(Request):
    """A Request whose upload bodies may be as large as max_upload_size and stream with backpressure."""

    upload_limit: ClassVar[int] = 0

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if method in ("POST", "PUT") and UPLOAD_PATH.fullmatch(path):
            self.body_class = UploadBody  # type: ignore[misc]
            kwargs["max_content_length"] = self.upload_limit
        super().__init__(method, scheme, path, *args, **kwargs)


class UploadHTTPConnection(HTTPConnection):
    """Feeds an UploadBody only as fast as the handler drains it (ASGI receive is the valve)."""

    async def handle_messages(self, request: Request, receive: Any) -> None:
        body = request.body
        if not isinstance(body, UploadBody):
            return await super().handle_messages(request, receive)
        while True:
            await body.wait_drained()
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
            elif message["type"] == "http.disconnect":
                return


def install_upload_streaming(app: Quart, upload_limit: int) -> None:
    """Make `app` build upload requests with the upload limit and a backpressured body."""
    app.request_class = type("MediaUploadRequest", (UploadRequest,), {"upload_limit": upload_limit})
    app.asgi_http_class = UploadHTTPConnection


async def iter_upload_body(body: Body, *, idle_timeout: float = UPLOAD_IDLE_TIMEOUT_S) -> AsyncIterator[bytes]:
    """The request body's chunks; a client silent for `idle_timeout` seconds ends it with TimeoutError."""
    iterator = body.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), idle_timeout)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk
