"""Content repository over HTTP (Quart's test client): uploads, downloads, thumbnails, limits.

Spec: client-server-api, "Content repository".
"""
from __future__ import annotations

import asyncio
import io
import os
import struct
import time
import zlib
from typing import Any
from urllib.parse import quote

from PIL import Image

AUTHED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"
CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
       "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")


def png_bytes(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "orange").save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb's calling card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(api: Any, token: str, data: bytes, content_type: str = "application/octet-stream",
                 filename: str | None = None, expect: int = 200) -> Any:
    query = f"?filename={quote(filename, safe='')}" if filename is not None else ""
    resp = await api.client.post(f"{LEGACY}/upload{query}", data=data,
                                 headers={**auth(token), "Content-Type": content_type})
    body = await resp.get_json()
    assert resp.status_code == expect, body
    if expect != 200:
        return body
    assert body["content_uri"].startswith("mxc://test.local/")
    return body["content_uri"].rsplit("/", 1)[1]


async def get(api: Any, path: str, token: str | None = None, **headers: str) -> Any:
    resp = await api.client.get(path, headers={**(auth(token) if token else {}), **headers})
    resp.body_bytes = await resp.get_data()
    return resp


async def test_config_requires_a_token(api) -> None:
    """Spec: getConfigAuthed and getConfig: m.upload.size."""
    token = (await api.register("cfg"))["access_token"]
    for path in (f"{AUTHED}/config", f"{LEGACY}/config"):
        resp = await get(api, path, token)
        assert resp.status_code == 200 and (await resp.get_json()) == {"m.upload.size": 52_428_800}
        resp = await get(api, path)
        assert resp.status_code == 401 and (await resp.get_json())["errcode"] == "M_MISSING_TOKEN"


async def test_upload_download_and_safe_headers(api) -> None:
    """Spec: getContentAuthed: Content-Type, Content-Disposition, CSP, CORP; a token is required."""
    token = (await api.register("dl"))["access_token"]
    media_id = await upload(api, token, b"hello world", "text/plain", "hello.txt")
    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}", token)
    assert resp.status_code == 200 and resp.body_bytes == b"hello world"
    h = resp.headers
    assert h["Content-Type"] == "text/plain; charset=utf-8"
    assert h["Content-Disposition"] == "inline; filename=hello.txt"
    assert h["Content-Security-Policy"] == CSP
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"].startswith("private") and h["Content-Length"] == "11"
    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}/other%20name.txt", token)
    assert resp.headers["Content-Disposition"] == "inline; filename*=utf-8''other%20name.txt"
    resp = await api.client.head(f"{AUTHED}/download/test.local/{media_id}", headers=auth(token))
    assert resp.status_code == 200   # (the test client recomputes Content-Length; see the nio tests)

    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}")
    assert resp.status_code == 401 and (await resp.get_json())["errcode"] == "M_MISSING_TOKEN"
    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}", "wrong-token")
    assert resp.status_code == 401 and (await resp.get_json())["errcode"] == "M_UNKNOWN_TOKEN"

    html = await upload(api, token, b"<script>alert(1)</script>", "text/html", "page.html")
    resp = await get(api, f"{AUTHED}/download/test.local/{html}", token)
    assert resp.headers["Content-Disposition"] == "attachment; filename=page.html"
    bare = await upload(api, token, b"\x00\x01", "")
    resp = await get(api, f"{AUTHED}/download/test.local/{bare}", token)
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == "attachment"
    assert (await upload(api, "bad", b"x", expect=401))["errcode"] == "M_UNKNOWN_TOKEN"


async def test_unknown_remote_and_malformed_addresses(api) -> None:
    """Spec: "Security considerations": IDs and server names are checked before any lookup."""
    token = (await api.register("trav"))["access_token"]
    await upload(api, token, b"secret")
    cases = ["test.local/AAAAAAAAAAAAAAAAAAAAAAAA", "matrix.org/AAAAAAAAAAAAAAAAAAAAAAAA",
             "test.local/..", "test.local/%2e%2e", "test.local/..%2f..%2fhomeserver.db",
             "test.local/%2Fetc%2Fpasswd", "..%2F..%2Fetc/passwd", "test.local/a.b",
             "test.local/%00", "[::1/abc", "test.local/.%2e"]
    for case in cases:
        for prefix in (f"{AUTHED}/download", f"{AUTHED}/thumbnail", f"{LEGACY}/download"):
            resp = await get(api, f"{prefix}/{case}?width=32&height=32", token)
            assert resp.status_code in (400, 404), (prefix, case, resp.status_code)
            assert (await resp.get_json())["errcode"] in ("M_NOT_FOUND", "M_INVALID_PARAM", "M_UNRECOGNIZED")


async def test_header_injection_in_filenames(api) -> None:
    token = (await api.register("inj"))["access_token"]
    evil = 'x"; filename="evil.html\r\nSet-Cookie: session=stolen'
    media_id = await upload(api, token, b"data", "text/plain", evil)
    for path in (f"{AUTHED}/download/test.local/{media_id}",
                 f"{AUTHED}/download/test.local/{media_id}/a%22;%20filename=evil.html;x=%5C.txt"):
        resp = await get(api, path, token)
        assert resp.status_code == 200
        disposition = resp.headers["Content-Disposition"]
        assert "\r" not in disposition and "\n" not in disposition and '"' not in disposition
        assert disposition.startswith("inline; filename*=utf-8''") and disposition.count(";") == 1
        assert "Set-Cookie" not in resp.headers
    # A file name with a line break in the path matches no route at all.
    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}/a%0d%0aSet-Cookie:%20x=y", token)
    assert resp.status_code == 404 and "Set-Cookie" not in resp.headers


async def test_range_requests(api) -> None:
    """RFC 9110 "Range Requests": 206 with Content-Range, 416 for unsatisfiable ranges."""
    token = (await api.register("rng"))["access_token"]
    data = bytes(range(256)) * 4
    media_id = await upload(api, token, data)
    path = f"{AUTHED}/download/test.local/{media_id}"
    resp = await get(api, path, token, Range="bytes=10-19")
    assert resp.status_code == 206 and resp.body_bytes == data[10:20]
    assert resp.headers["Content-Range"] == "bytes 10-19/1024" and resp.headers["Content-Length"] == "10"
    resp = await get(api, path, token, Range="bytes=-4")
    assert resp.status_code == 206 and resp.body_bytes == data[-4:]
    resp = await get(api, path, token, Range="bytes=1000-")
    assert resp.status_code == 206 and resp.body_bytes == data[1000:]
    resp = await get(api, path, token, Range="bytes=5000-")
    assert resp.status_code == 416 and resp.headers["Content-Range"] == "bytes */1024"
    resp = await get(api, path, token, Range="bytes=5-1")          # invalid: ignored
    assert resp.status_code == 200 and resp.body_bytes == data
    etag = resp.headers["ETag"]
    resp = await get(api, path, token, Range="bytes=0-0", **{"If-Range": '"other"'})
    assert resp.status_code == 200 and len(resp.body_bytes) == 1024
    resp = await get(api, path, token, Range="bytes=0-0", **{"If-Range": etag})
    assert resp.status_code == 206 and resp.body_bytes == data[:1]
    resp = await get(api, path, token, **{"If-None-Match": etag})
    assert resp.status_code == 304


async def test_legacy_endpoints_are_frozen(make_api) -> None:
    """Spec: "Client behaviour": media uploaded after the freeze is not served unauthenticated."""
    api = await make_api()
    token = (await api.register("frz"))["access_token"]
    media_id = await upload(api, token, png_bytes((200, 200)), "image/png")
    for path in (f"{LEGACY}/download/test.local/{media_id}", f"/_matrix/media/r0/download/test.local/{media_id}",
                 f"{LEGACY}/thumbnail/test.local/{media_id}?width=32&height=32"):
        resp = await get(api, path)
        assert resp.status_code == 404 and (await resp.get_json())["errcode"] == "M_NOT_FOUND"
    assert (await get(api, f"{AUTHED}/download/test.local/{media_id}", token)).status_code == 200

    open_api = await make_api(freeze_unauthenticated_media=False, data_dir=str(api.server.config.data_path) + "2")
    token = (await open_api.register("old"))["access_token"]
    media_id = await upload(open_api, token, png_bytes((200, 200)), "image/png", "old.png")
    resp = await get(open_api, f"{LEGACY}/download/test.local/{media_id}")
    assert resp.status_code == 200 and resp.headers["Cache-Control"].startswith("public")
    resp = await get(open_api, f"{LEGACY}/thumbnail/test.local/{media_id}?width=32&height=32&method=crop")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"


async def test_identical_content_is_stored_once(api) -> None:
    token = (await api.register("dup"))["access_token"]
    ids = await asyncio.gather(*(upload(api, token, b"same bytes" * 1000) for _ in range(6)))
    assert len(set(ids)) == 6
    content = api.server.config.media_path / "content"
    assert len([p for p in content.rglob("*") if p.is_file()]) == 1
    assert not list((api.server.config.media_path / "tmp").iterdir())


async def test_size_limit_quota_and_rate_limit(make_api) -> None:
    """Spec: uploadContent: 413 M_TOO_LARGE, 403 for a quota, 429 M_LIMIT_EXCEEDED."""
    api = await make_api(max_upload_size=1000, media_quota_per_user_bytes=2500,
                         rc_media_upload_per_second=0.01, rc_media_upload_burst=5)
    token = (await api.register("lim"))["access_token"]
    resp = await get(api, f"{AUTHED}/config", token)
    assert (await resp.get_json()) == {"m.upload.size": 1000}
    body = await upload(api, token, b"x" * 1001, expect=413)
    assert body["errcode"] == "M_TOO_LARGE"
    await upload(api, token, b"a" * 1000)
    await upload(api, token, b"b" * 1000)
    body = await upload(api, token, b"c" * 1000, expect=403)      # 3000 > 2500
    assert body["errcode"] == "M_FORBIDDEN"
    await upload(api, token, b"d" * 400)

    other = (await api.register("lim2"))["access_token"]           # the rate is per user
    for _ in range(5):
        await upload(api, other, b"e")
    body = await upload(api, other, b"e", expect=429)
    assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
    assert not list((api.server.config.media_path / "tmp").iterdir())


async def test_async_upload_flow(api) -> None:
    """Spec: createContent, uploadContentToMXC, and timeout_ms / M_NOT_YET_UPLOADED on download."""
    alice = (await api.register("asy"))["access_token"]
    bob = (await api.register("bsy"))["access_token"]
    resp = await api.client.post("/_matrix/media/v1/create", headers=auth(alice))
    created = await resp.get_json()
    assert resp.status_code == 200 and created["unused_expires_at"] > time.time() * 1000
    media_id = created["content_uri"].rsplit("/", 1)[1]
    path = f"{AUTHED}/download/test.local/{media_id}"
    resp = await get(api, f"{path}?timeout_ms=0", alice)
    assert resp.status_code == 504 and (await resp.get_json())["errcode"] == "M_NOT_YET_UPLOADED"

    waiting = asyncio.create_task(get(api, f"{path}?timeout_ms=10000", bob))
    while ("test.local", media_id) not in api.server.media._waiters:   # it waits on an event
        assert not waiting.done()
        await asyncio.sleep(0)
    put = f"{LEGACY}/upload/test.local/{media_id}"
    resp = await api.client.put(put, data=b"late", headers={**auth(bob), "Content-Type": "text/plain"})
    assert resp.status_code == 403 and (await resp.get_json())["errcode"] == "M_FORBIDDEN"
    resp = await api.client.put(f"{put}?filename=late.txt", data=b"late",
                                headers={**auth(alice), "Content-Type": "text/plain"})
    assert resp.status_code == 200 and (await resp.get_json()) == {}
    got = await asyncio.wait_for(waiting, 5)
    assert got.status_code == 200 and got.body_bytes == b"late"
    assert got.headers["Content-Disposition"] == "inline; filename=late.txt"
    resp = await api.client.put(put, data=b"again", headers=auth(alice))
    assert resp.status_code == 409 and (await resp.get_json())["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    for bad in (f"{LEGACY}/upload/test.local/AAAAAAAAAAAAAAAAAAAAAAAA", f"{LEGACY}/upload/other.org/{media_id}"):
        resp = await api.client.put(bad, data=b"x", headers=auth(alice))
        assert resp.status_code == 404 and (await resp.get_json())["errcode"] == "M_NOT_FOUND"

    for _ in range(5):
        assert (await api.client.post("/_matrix/media/v1/create", headers=auth(bob))).status_code == 200
    resp = await api.client.post("/_matrix/media/v1/create", headers=auth(bob))
    assert resp.status_code == 429 and (await resp.get_json())["errcode"] == "M_LIMIT_EXCEEDED"
    assert (await api.client.post("/_matrix/media/v1/create")).status_code == 401


async def test_an_expired_media_id_is_refused_before_maintenance_deletes_it(api) -> None:
    """An expired pending ID is gone for clients at once, whenever maintenance gets to its row."""
    alice = (await api.register("exp"))["access_token"]
    resp = await api.client.post("/_matrix/media/v1/create", headers=auth(alice))
    media_id = (await resp.get_json())["content_uri"].rsplit("/", 1)[1]
    await api.server.db.write(lambda tx: tx.execute(
        "UPDATE media SET unused_expires_ts = ? WHERE media_id = ?", (int(time.time() * 1000) - 1, media_id)))
    resp = await api.client.put(f"{LEGACY}/upload/test.local/{media_id}", data=b"late",
                                headers={**auth(alice), "Content-Type": "text/plain"})
    assert resp.status_code == 404 and (await resp.get_json())["errcode"] == "M_NOT_FOUND"
    resp = await get(api, f"{AUTHED}/download/test.local/{media_id}?timeout_ms=0", alice)
    assert resp.status_code == 404 and (await resp.get_json())["errcode"] == "M_NOT_FOUND"
    assert await api.server.db.fetchall("SELECT 1 FROM media WHERE media_id = ?", (media_id,))  # row still there


async def test_thumbnails(api) -> None:
    """Spec: getContentThumbnailAuthed: standard sizes, cached, 400 for non-images, 413 for bombs."""
    token = (await api.register("thm"))["access_token"]
    media_id = await upload(api, token, png_bytes((1000, 800)), "image/png")
    path = f"{AUTHED}/thumbnail/test.local/{media_id}"
    resp = await get(api, f"{path}?width=90&height=90&method=crop", token)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == "inline; filename=thumbnail.png"
    assert resp.headers["Content-Security-Policy"] == CSP
    assert Image.open(io.BytesIO(resp.body_bytes)).size == (96, 96)
    thumbs = [p for p in (api.server.config.media_path / "thumbnails").rglob("*") if p.is_file()]
    assert [p.name for p in thumbs] == ["96x96-crop"]
    again = await get(api, f"{path}?width=96&height=96&method=crop", token)
    assert again.body_bytes == resp.body_bytes
    resp = await get(api, f"{path}?width=300&height=200", token)
    assert Image.open(io.BytesIO(resp.body_bytes)).size == (300, 240)   # 320x240 box, aspect kept

    text = await upload(api, token, b"not an image", "text/plain")
    fake = await upload(api, token, b"not an image either", "image/png")
    for bad in (text, fake):
        resp = await get(api, f"{AUTHED}/thumbnail/test.local/{bad}?width=32&height=32", token)
        assert resp.status_code == 400 and (await resp.get_json())["errcode"] == "M_UNKNOWN"
    bomb = await upload(api, token, png_claiming(60_000, 60_000), "image/png")
    resp = await get(api, f"{AUTHED}/thumbnail/test.local/{bomb}?width=32&height=32", token)
    assert resp.status_code == 413 and (await resp.get_json())["errcode"] == "M_TOO_LARGE"
    for query, errcode in (("width=32", "M_MISSING_PARAM"), ("width=x&height=3", "M_INVALID_PARAM"),
                           ("width=-5&height=5", "M_INVALID_PARAM"),
                           ("width=5&height=5&method=stretch", "M_INVALID_PARAM"),
                           ("width=5&height=5&animated=yes", "M_INVALID_PARAM")):
        resp = await get(api, f"{path}?{query}", token)
        assert resp.status_code == 400 and (await resp.get_json())["errcode"] == errcode, query
    assert (await get(api, f"{path}?width=32&height=32")).status_code == 401


async def test_animated_thumbnail(api) -> None:
    token = (await api.register("gif"))["access_token"]
    frames = [Image.new("RGB", (300, 300), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    media_id = await upload(api, token, buf.getvalue(), "image/gif")
    path = f"{AUTHED}/thumbnail/test.local/{media_id}?width=96&height=96&method=crop"
    resp = await get(api, f"{path}&animated=true", token)
    assert resp.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(resp.body_bytes)).n_frames == 3
    resp = await get(api, f"{path}&animated=false", token)
    assert resp.headers["Content-Type"] == "image/png"


async def test_url_previews_are_off_by_default(make_api) -> None:
    """Synapse registers no preview route when previews are off: 404 M_UNRECOGNIZED."""
    api = await make_api()
    for path in (f"{AUTHED}/preview_url?url=https://example.org", f"{LEGACY}/preview_url?url=https://example.org"):
        resp = await get(api, path)
        assert resp.status_code == 404 and (await resp.get_json())["errcode"] == "M_UNRECOGNIZED"
    on = await make_api(url_preview_enabled=True, data_dir=str(api.server.config.data_path) + "p")
    token = (await on.register("pre"))["access_token"]
    resp = await get(on, f"{AUTHED}/preview_url?url=https://example.org")
    assert resp.status_code == 401 and (await resp.get_json())["errcode"] == "M_MISSING_TOKEN"
    for url, status, errcode in (("http://127.0.0.1:8008/_matrix/client/versions", 403, "M_FORBIDDEN"),
                                 ("http://169.254.169.254/latest/meta-data/", 403, "M_FORBIDDEN"),
                                 ("file:///etc/passwd", 400, "M_INVALID_PARAM")):
        resp = await get(on, f"{AUTHED}/preview_url?url={quote(url, safe='')}", token)
        assert resp.status_code == status and (await resp.get_json())["errcode"] == errcode, url
    resp = await get(on, f"{AUTHED}/preview_url", token)
    assert resp.status_code == 400 and (await resp.get_json())["errcode"] == "M_MISSING_PARAM"


async def test_purge_keeps_recent_media_and_removes_old(api) -> None:
    token = (await api.register("old"))["access_token"]
    kept = await upload(api, token, b"recent")
    gone = await upload(api, token, b"ancient")
    media = api.server.media
    old_ts = int(time.time() * 1000) - 40 * 86_400_000
    await api.server.db.write(lambda tx: tx.execute(
        "UPDATE media SET created_ts = ?, uploaded_ts = ? WHERE media_id = ?", (old_ts, old_ts, gone)))
    for path in (media.config.media_path / "content").rglob("*"):
        os.utime(path, (time.time() - 3600, time.time() - 3600))   # past the sweeper's grace
    deleted, files = await media.purge(30, local=True, remote=False)
    assert (deleted, files) == (1, 1)
    assert (await get(api, f"{AUTHED}/download/test.local/{gone}", token)).status_code == 404
    assert (await get(api, f"{AUTHED}/download/test.local/{kept}", token)).body_bytes == b"recent"
    assert await media.purge(30, local=False, remote=True) == (0, 0)


async def test_guests_read_authenticated_media(make_api) -> None:
    """Spec v1.12, "Guest access": guests may download and thumbnail, but not upload."""
    api = await make_api(allow_guest_access=True)
    token = (await api.register("owner"))["access_token"]
    media_id = await upload(api, token, png_bytes((64, 64)), "image/png", filename="pic.png")
    status, guest = await api.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert status == 200, guest
    g = guest["access_token"]
    for path in (f"{AUTHED}/download/test.local/{media_id}", f"{AUTHED}/download/test.local/{media_id}/x.png",
                 f"{AUTHED}/thumbnail/test.local/{media_id}?width=32&height=32"):
        resp = await get(api, path, g)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png", path
    resp = await api.client.post(f"{LEGACY}/upload", data=b"x",
                                 headers={**auth(g), "Content-Type": "text/plain"})
    assert resp.status_code == 403 and (await resp.get_json())["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
