"""Content repository end to end: matrix-nio and raw HTTP against a real server on loopback.

Spec: client-server-api, "Content repository".
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from nio import (AsyncClient, DownloadError, MemoryDownloadResponse, ResizingMethod, ThumbnailResponse,
                 UploadResponse)
from PIL import Image

AUTHED = "/_matrix/client/v1/media"


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition on the server's files (another process: nothing to await on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


@pytest.fixture
async def user(homeserver, http: aiohttp.ClientSession) -> dict[str, Any]:
    name = f"media{time.monotonic_ns()}"
    return await homeserver.register_shared_secret(http, name, "pw-" + name)


async def nio_client(homeserver, user: dict[str, Any]) -> AsyncClient:
    client = AsyncClient(homeserver.base_url, user["user_id"])
    client.access_token, client.user_id, client.device_id = user["access_token"], user["user_id"], user["device_id"]
    return client


async def test_nio_upload_download_thumbnail(homeserver, user) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), "purple").save(buf, format="PNG")
    picture = buf.getvalue()
    client = await nio_client(homeserver, user)
    try:
        resp, keys = await client.upload(io.BytesIO(picture), content_type="image/png",
                                         filename="purple cat.png", filesize=len(picture))
        assert isinstance(resp, UploadResponse), resp
        assert keys is None and resp.content_uri.startswith("mxc://test.local/")
        media_id = resp.content_uri.rsplit("/", 1)[1]

        got = await client.download(mxc=resp.content_uri)
        assert isinstance(got, MemoryDownloadResponse), got
        assert got.body == picture and got.content_type == "image/png" and got.filename == "purple cat.png"
        renamed = await client.download(mxc=resp.content_uri, filename="renamed.png")
        assert isinstance(renamed, MemoryDownloadResponse) and renamed.filename == "renamed.png"

        thumb = await client.thumbnail("test.local", media_id, 32, 32, ResizingMethod.crop)
        assert isinstance(thumb, ThumbnailResponse), thumb
        assert thumb.content_type == "image/png"
        assert Image.open(io.BytesIO(thumb.body)).size == (32, 32)

        client.access_token = ""
        refused = await client.download(mxc=resp.content_uri)
        assert isinstance(refused, DownloadError) and refused.status_code == "M_MISSING_TOKEN"
    finally:
        await client.close()


async def test_concurrent_identical_uploads_are_stored_once(homeserver, user, http) -> None:
    data = hashlib.sha256(user["user_id"].encode()).digest() * 40_000      # 1.28 MB, unique per run
    headers = {"Authorization": f"Bearer {user['access_token']}", "Content-Type": "application/octet-stream"}

    async def upload() -> str:
        async with http.post(f"{homeserver.base_url}/_matrix/media/v3/upload", data=data,
                             headers=headers) as resp:
            assert resp.status == 200
            return (await resp.json())["content_uri"]

    uris = await asyncio.gather(*(upload() for _ in range(8)))
    assert len(set(uris)) == 8
    content_hash = hashlib.sha256(data).hexdigest()
    matches = [p for p in files_under(homeserver.data_dir / "media" / "content") if p.name == content_hash]
    assert len(matches) == 1 and matches[0].stat().st_size == len(data)
    for uri in uris[:2]:
        async with http.get(f"{homeserver.base_url}{AUTHED}/download/{uri[6:]}", headers=headers) as resp:
            assert await resp.read() == data


async def test_range_and_head_over_http(homeserver, user, http) -> None:
    headers = {"Authorization": f"Bearer {user['access_token']}"}
    data = bytes(range(256)) * 1000
    async with http.post(f"{homeserver.base_url}/_matrix/media/v3/upload", data=data, headers=headers) as resp:
        url = f"{homeserver.base_url}{AUTHED}/download/{(await resp.json())['content_uri'][6:]}"
    async with http.get(url, headers={**headers, "Range": "bytes=1000-1999"}) as resp:
        assert resp.status == 206 and await resp.read() == data[1000:2000]
        assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    async with http.get(url, headers={**headers, "Range": f"bytes={len(data)}-"}) as resp:
        assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(data)}"
    async with http.head(url, headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))
        assert resp.headers["Accept-Ranges"] == "bytes"


async def raw_request(homeserver, request: bytes) -> tuple[int, bytes]:
    """Send bytes exactly as given (no client-side path normalisation); returns status and reply."""
    host, port = homeserver.base_url.rsplit("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    return int(reply.split(b" ", 2)[1]), reply


async def test_traversal_attempts_never_reach_the_filesystem(homeserver, user) -> None:
    token = user["access_token"].encode()
    paths = [b"/_matrix/client/v1/media/download/test.local/../../../homeserver.db",
             b"/_matrix/client/v1/media/download/test.local/%2e%2e/%2e%2e/signing.key",
             b"/_matrix/client/v1/media/download/test.local/..%2f..%2fhomeserver.db",
             b"/_matrix/client/v1/media/download/test.local/%2fetc%2fpasswd",
             b"/_matrix/client/v1/media/download/..%2f..%2f/homeserver.db",
             b"/_matrix/client/v1/media/thumbnail/test.local/..?width=32&height=32",
             b"/_matrix/media/v3/download/test.local/%2e%2e%2fpocketserver.toml",
             b"/_matrix/client/v1/media/download/test.local//etc/passwd"]
    for path in paths:
        status, reply = await raw_request(homeserver, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                                          b"Authorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
        assert status in (400, 404), (path, reply[:300])
        assert b"SQLite format" not in reply and b"root:" not in reply


async def test_oversized_chunked_and_abandoned_uploads_leave_nothing(homeserver, user, http) -> None:
    """Bodies past max_upload_size are refused; a dropped connection leaves no file behind."""
    tmp = homeserver.data_dir / "media" / "tmp"
    before = set(files_under(homeserver.data_dir / "media" / "content"))

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(60):          # 60 MiB, chunked (no Content-Length), past the 50 MiB limit
            yield b"z" * (1024 * 1024)

    headers = {"Authorization": f"Bearer {user['access_token']}"}
    status = None
    try:
        async with asyncio.timeout(60):   # never hang the suite on a client stuck writing to a closed socket
            async with http.post(f"{homeserver.base_url}/_matrix/media/v3/upload", data=endless(),
                                 headers=headers) as resp:
                status = resp.status
                assert (await resp.json())["errcode"] == "M_TOO_LARGE"
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        # The server refuses and closes while the client is still sending: the client may see a
        # reset before the response, or the response cut short. Nothing may be stored either way.
        pass
    assert status in (None, 413)

    token = user["access_token"].encode()
    host, port = homeserver.base_url.rsplit("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
                 + b"\r\nContent-Length: 10000000\r\n\r\n" + b"half" * 500_000)
    await writer.drain()
    await wait_until(lambda: any(tmp.iterdir()))        # the upload is under way...
    writer.close()                                      # ...and the client goes away
    await wait_until(lambda: not any(tmp.iterdir()))
    assert set(files_under(homeserver.data_dir / "media" / "content")) == before


async def test_purge_command(homeserver, user, http) -> None:
    headers = {"Authorization": f"Bearer {user['access_token']}"}
    async with http.post(f"{homeserver.base_url}/_matrix/media/v3/upload", data=b"short-lived",
                         headers=headers) as resp:
        assert resp.status == 200
    result = homeserver.cli("media", "purge", "--older-than", "30", "--local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted 0 media")
    result = homeserver.cli("media", "purge", "--older-than", "0")
    assert result.returncode == 0 and "deleted" in result.stdout, result.stderr
    assert int(result.stdout.split()[1]) >= 1
    # Files stay for a grace period (an identical upload may be committing); rows are gone.
    assert homeserver.cli("media", "purge").returncode == 2      # --older-than is required
