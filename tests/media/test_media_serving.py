"""Media response headers and Range parsing.

Spec: client-server-api, "Content repository" > "Serving inline content"; RFC 9110 "Range".
"""
from __future__ import annotations

import pytest

from pocketserver.media import check_media_address, new_media_id, MEDIA_ID_RE
from pocketserver.errors import InvalidParam, NotFound
from pocketserver.media.serving import (content_disposition, is_inline_type, parse_range,
                                        serving_content_type)


def test_content_disposition_cannot_be_broken_out_of() -> None:
    assert content_disposition(True, None) == "inline"
    assert content_disposition(True, "cat.png") == "inline; filename=cat.png"
    assert content_disposition(False, "a b.pdf") == "attachment; filename*=utf-8''a%20b.pdf"
    assert content_disposition(True, "naïve.txt") == "inline; filename*=utf-8''na%C3%AFve.txt"
    for evil in ('x"; filename="evil.html', "x\r\nSet-Cookie: a=b", "x\nLocation: http://evil",
                 "a;b=c", "\x00\x7f", "../../etc/passwd"):
        value = content_disposition(False, evil)
        assert "\r" not in value and "\n" not in value and '"' not in value and "\x00" not in value
        assert value.count(";") == 1, value


def test_inline_only_for_safe_types() -> None:
    """Spec: "Serving inline content": the listed types only."""
    for t in ("image/png", "IMAGE/JPEG", "video/mp4", "audio/ogg", "text/plain; charset=utf-8"):
        assert is_inline_type(t), t
    for t in ("text/html", "image/svg+xml", "application/javascript", "application/pdf", None, ""):
        assert not is_inline_type(t), t


def test_serving_content_type() -> None:
    assert serving_content_type("text/plain") == "text/plain; charset=utf-8"
    assert serving_content_type("text/plain; charset=latin-1") == "text/plain; charset=latin-1"
    assert serving_content_type("image/png") == "image/png"
    assert serving_content_type(None) == "application/octet-stream"
    assert serving_content_type("nonsense") == "application/octet-stream"
    assert serving_content_type("image/png\x01") == "application/octet-stream"


@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("bytes=0-9", (0, 9)),
    ("bytes=90-", (90, 99)),
    ("bytes=-10", (90, 99)),
    ("bytes=50-1000", (50, 99)),
    ("bytes=100-", "unsatisfiable"),
    ("bytes=-0", "unsatisfiable"),
    ("bytes=9-5", None),            # invalid: ignored
    ("bytes=0-1,5-6", None),        # several ranges: the whole file is sent
    ("items=0-5", None),
    ("bytes=abc", None),
])
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_media_ids_and_addresses() -> None:
    """Spec: "Security considerations": only A-Za-z0-9, _ and - in media IDs; valid server names."""
    ids = {new_media_id() for _ in range(100)}
    assert len(ids) == 100 and all(MEDIA_ID_RE.fullmatch(i) and len(i) == 24 for i in ids)
    check_media_address("test.local", "abcDEF123_-")
    for bad in ("..", "../etc", "a/b", "%2e%2e", "a.b", "", "x" * 256, "abc\x00"):
        with pytest.raises(NotFound):
            check_media_address("test.local", bad)
    for bad in ("", "../x", "a/b", "exa mple.com", "[::1"):
        with pytest.raises(InvalidParam):
            check_media_address(bad, "abc")
