"""create_app: URL rules match and still build URLs although their builders compile lazily."""
from __future__ import annotations

from typing import Any

from pocketserver.app import LazyBuilderRule


def test_rules_match_and_build_urls(app_factory: Any) -> None:
    app = app_factory()
    adapter = app.url_map.bind("localhost")
    path = "/_matrix/client/v3/rooms/!r:test.local/send/m.room.message/t1"
    endpoint, values = adapter.match(path, method="PUT")
    assert endpoint == "rooms.send_message"
    assert values == {"room_id": "!r:test.local", "event_type": "m.room.message", "txn_id": "t1"}
    assert adapter.build(endpoint, values) == path
    assert adapter.build(endpoint, values) == path                      # the builder kept from the first
    assert adapter.build("versions.get_versions", {"x": "1"}) == "/_matrix/client/versions?x=1"
    assert adapter.build("versions.get_versions", {}) == "/_matrix/client/versions"
    assert all(isinstance(rule, LazyBuilderRule) for rule in app.url_map.iter_rules())


def test_a_request_framed_two_ways_is_refused_and_its_connection_closed(homeserver) -> None:
    """Content-Length and Transfer-Encoding together: 400, and the connection closes (RFC 9112,
    6.1), so a request hidden in the body is never answered."""
    import socket
    from urllib.parse import urlsplit
    url = urlsplit(homeserver.base_url)
    smuggled = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and reply.count(b"HTTP/1.1 ") == 1, reply
