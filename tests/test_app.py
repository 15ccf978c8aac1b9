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
