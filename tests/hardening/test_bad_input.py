"""Bad input, case by case: each asserts the exact status and errcode (the spec's, or Synapse's).

Decisions recorded here:
- Duplicate keys in a JSON object: the last one wins, as in Synapse (Python's json module).
- Numbers: event content follows the strict canonical JSON of room versions 6+ (no floats,
  integers within +-(2**53 - 1)), 400 M_BAD_JSON. Any body: a number that is valid JSON but no
  usable number (1e400, which would read as inf; integers of hundreds of digits) is 400
  M_BAD_JSON. Non-event bodies (account data) keep big integers, as Synapse does.
- NaN, Infinity, bad UTF-8, trailing garbage, an empty body where JSON is required, nesting past
  the parser's recursion limit: 400 M_NOT_JSON. A top-level non-object, or nesting past 100
  levels that still parses: 400 M_BAD_JSON.
- Content-Type is not checked for JSON bodies (as Synapse).
- Event type or state key over 255 bytes: 413 M_TOO_LARGE (Synapse's EventSizeError).
- A negative `limit` is 400 M_INVALID_PARAM; a huge one is capped (Synapse's parse_integer).
- Numeric tokens are ASCII digits only: "²" passes str.isdigit() but not int().

Spec: client-server-api, "API Standards", "Standard error response", "Transaction identifiers",
"Content repository"; rooms/v6, "Canonical JSON".
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator

import pytest

from tests.conftest import SHARED_SECRET, RunningServer, start_server

C = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
JSON = {"Content-Type": "application/json"}
MAX_UPLOAD = 2 * 1024 * 1024


class Client:
    """Plain urllib against the real server: no client-side normalising of paths or bodies."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None

    def raw(self, method: str, path: str, data: bytes | None = None, *, query: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, token: bool = True) -> tuple[int, Any, bytes]:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        hdrs = dict(headers or {})
        if token and self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
             token: bool = True) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        status, _, content = self.raw(method, path, data, query=query,
                                      headers={**JSON, **(headers or {})}, token=token)
        try:
            return status, json.loads(content)
        except ValueError:
            return status, content


def _register(client: Client, username: str) -> dict[str, Any]:
    status, body = client.call("GET", "/_synapse/admin/v1/register", token=False)
    mac = hmac.new(SHARED_SECRET.encode(), b"\x00".join(
        [body["nonce"].encode(), username.encode(), b"pw", b"notadmin"]), hashlib.sha1).hexdigest()
    status, body = client.call("POST", "/_synapse/admin/v1/register", {
        "nonce": body["nonce"], "username": username, "password": "pw", "admin": False, "mac": mac}, token=False)
    assert status == 200, body
    return body


class World:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.c = Client(server.base_url)
        self.c.token = _register(self.c, "alice")["access_token"]
        status, body = self.c.call("POST", f"{C}/createRoom", {})
        assert status == 200, body
        self.room = body["room_id"]
        self.event = self.send({"msgtype": "m.text", "body": "first"}, "t0")
        status, _, content = self.c.raw("POST", "/_matrix/media/v3/upload", b"hello",
                                        headers={"Content-Type": "text/plain"})
        self.media = json.loads(content)["content_uri"].rsplit("/", 1)[1]

    def send(self, content: Any, txn: str, event_type: str = "m.room.message") -> str:
        status, body = self.c.call("PUT", f"{C}/rooms/{self.room}/send/{event_type}/{txn}", content)
        assert status == 200, body
        return body["event_id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_server(tmp_path_factory.mktemp("bad-input"), max_upload_size=MAX_UPLOAD)
    try:
        yield World(server)
    finally:
        assert server.stop() == 0, "server did not shut down cleanly"
    log = (server.data_dir.parent / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


def assert_error(result: tuple[int, Any], status: int, errcode: str) -> None:
    got_status, body = result
    assert (got_status, body.get("errcode") if isinstance(body, dict) else body) == (status, errcode), body
    assert isinstance(body.get("error"), str)


# --- JSON bodies ----------------------------------------------------------------------------

NOT_JSON = {
    "invalid UTF-8": b'{"msgtype":"m.text","body":"\xff\xfe"}',
    "overlong UTF-8": b'{"body":"\xc0\xaf"}',
    "NaN": b'{"body":NaN}',
    "Infinity": b'{"body":Infinity}',
    "-Infinity": b'{"body":-Infinity}',
    "empty": b"",
    "whitespace": b"  \n",
    "trailing garbage": b'{"body":"x"} trailing',
    "single quotes": b"{'body':'x'}",
    "truncated": b'{"body":"x"',
    "byte order mark": b'\xef\xbb\xbf{"body":"x"}',
    "nested 100000 deep": b"[" * 100000 + b"]" * 100000,   # past the parser's recursion limit, as Synapse
}

BAD_JSON = {
    "array": b"[]",
    "string": b'"str"',
    "null": b"null",
    "nested 200 deep": b'{"a":' * 200 + b"1" + b"}" * 200,
    "integer above 2**53": b'{"body":"x","n":9007199254740993}',
    "integer below -2**53": b'{"body":"x","n":-9007199254740993}',
    "float": b'{"body":"x","n":1.5}',
    "1e400": b'{"body":"x","n":1e400}',
    "-1e400": b'{"body":"x","n":-1e400}',
    "5000-digit integer": b'{"body":"x","n":' + b"9" * 5000 + b"}",
    "lone surrogate": b'{"body":"\\ud800"}',
}


@pytest.mark.parametrize("raw", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_event_body_not_json(world: World, raw: bytes) -> None:
    assert_error(world.c.call("PUT", f"{C}/rooms/{world.room}/send/m.room.message/nj{hash(raw)}", raw=raw),
                 400, "M_NOT_JSON")


@pytest.mark.parametrize("raw", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_event_body_bad_json(world: World, raw: bytes) -> None:
    assert_error(world.c.call("PUT", f"{C}/rooms/{world.room}/send/m.room.message/bj{hash(raw)}", raw=raw),
                 400, "M_BAD_JSON")


@pytest.mark.parametrize("raw", [b'{"n":1e400}', b'{"n":"\\udfff"}', b'{"n":' + b"1" * 1000 + b"}"],
                         ids=["1e400", "lone low surrogate", "1000-digit integer"])
def test_account_data_refuses_unusable_numbers_and_strings(world: World, raw: bytes) -> None:
    path = f"{C}/user/@alice:test.local/account_data/org.example.bad"
    assert_error(world.c.call("PUT", path, raw=raw), 400, "M_BAD_JSON")
    assert_error(world.c.call("GET", path), 404, "M_NOT_FOUND")


def test_account_data_keeps_big_integers_and_floats(world: World) -> None:
    """Account data is not an event: no canonical JSON rules, as in Synapse."""
    path = f"{C}/user/@alice:test.local/account_data/org.example.big"
    assert world.c.call("PUT", path, raw=b'{"n":18446744073709551616,"f":0.5}') == (200, {})
    assert world.c.call("GET", path) == (200, {"n": 18446744073709551616, "f": 0.5})


def test_surrogate_pair_is_fine(world: World) -> None:
    event_id = world.send({"msgtype": "m.text", "body": "\U0001F600"}, "pair")
    status, body = world.c.call("GET", f"{C}/rooms/{world.room}/event/{event_id}")
    assert status == 200 and body["content"]["body"] == "\U0001F600"


def test_duplicate_keys_last_wins(world: World) -> None:
    status, body = world.c.call("PUT", f"{C}/rooms/{world.room}/send/m.room.message/dup",
                                raw=b'{"msgtype":"m.text","body":"first","body":"last"}')
    assert status == 200, body
    status, event = world.c.call("GET", f"{C}/rooms/{world.room}/event/{body['event_id']}")
    assert event["content"] == {"msgtype": "m.text", "body": "last"}


def test_state_event_refuses_non_canonical_numbers(world: World) -> None:
    for raw in (b'{"topic":"x","n":1.5}', b'{"topic":"x","n":9007199254740993}', b'{"topic":"x","n":1e400}'):
        assert_error(world.c.call("PUT", f"{C}/rooms/{world.room}/state/m.room.topic/", raw=raw), 400, "M_BAD_JSON")


@pytest.mark.parametrize("method,path", [
    ("POST", f"{C}/login"), ("POST", f"{C}/user/@alice:test.local/filter"), ("POST", f"{C}/keys/query"),
    ("POST", f"{C}/keys/claim"), ("PUT", f"{C}/presence/@alice:test.local/status"),
    ("PUT", f"{C}/profile/@alice:test.local/displayname"), ("POST", f"{C}/pushers/set"),
])
def test_empty_body_where_json_is_required(world: World, method: str, path: str) -> None:
    assert_error(world.c.call(method, path, raw=b""), 400, "M_NOT_JSON")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_content_type_is_not_checked(world: World, content_type: str | None) -> None:
    """As Synapse: the body is parsed as JSON whatever the Content-Type says."""
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, content = world.c.raw("PUT", f"{C}/rooms/{world.room}/send/m.room.message/ct{hash(content_type)}",
                                     b'{"msgtype":"m.text","body":"x"}', headers=headers)
    assert status == 200 and json.loads(content)["event_id"].startswith("$")


def test_form_body_is_not_json(world: World) -> None:
    status, _, content = world.c.raw("POST", f"{C}/user/@alice:test.local/filter", b"a=1&b=2",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, json.loads(content)["errcode"]) == (400, "M_NOT_JSON")


def _send_big(world: World, method: str, path: str, content_type: str, size: int) -> tuple[int, dict[str, Any]]:
    """Send a body of `size` bytes over a raw socket; the server may answer and close early."""
    host, port = world.server.base_url.removeprefix("http://").split(":")
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {world.c.token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        chunk, sent = b"x" * 65536, 0
        try:
            while sent < size:
                sent += sock.send(chunk[:size - sent])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")


def test_ten_megabyte_bodies_are_too_large_and_the_server_stays_up(world: World) -> None:
    big = 10 * 1024 * 1024
    status, body = _send_big(world, "PUT", f"{C}/rooms/{world.room}/send/m.room.message/big", "application/json", big)
    assert (status, body.get("errcode")) == (413, "M_TOO_LARGE"), body
    status, body = _send_big(world, "POST", "/_matrix/media/v3/upload", "application/octet-stream", big)
    assert (status, body.get("errcode")) == (413, "M_TOO_LARGE"), body
    assert world.server.process.poll() is None
    assert world.c.call("GET", f"{C}/account/whoami")[0] == 200
    world.send({"msgtype": "m.text", "body": "still here"}, "after-big")


def test_event_just_over_64k_is_too_large(world: World) -> None:
    assert_error(world.c.call("PUT", f"{C}/rooms/{world.room}/send/m.room.message/64k",
                              {"msgtype": "m.text", "body": "x" * 70000}), 413, "M_TOO_LARGE")


def test_content_under_64k_in_an_event_over_64k_is_too_large(world: World) -> None:
    """The limit is on the whole signed event: content that fits alone can still make it too big."""
    assert_error(world.c.call("PUT", f"{C}/rooms/{world.room}/send/m.room.message/64k-envelope",
                              {"msgtype": "m.text", "body": "x" * 65300}), 413, "M_TOO_LARGE")


# --- oversized event fields -----------------------------------------------------------------

def test_oversized_state_key_and_event_type(world: World) -> None:
    r = f"{C}/rooms/{world.room}"
    assert_error(world.c.call("PUT", f"{r}/state/m.room.topic/{'k' * 256}", {"topic": "x"}), 413, "M_TOO_LARGE")
    assert_error(world.c.call("PUT", f"{r}/state/m.room.topic/{'%C3%A9' * 128}", {"topic": "x"}), 413, "M_TOO_LARGE")
    assert_error(world.c.call("PUT", f"{r}/state/{'t' * 256}/", {"a": 1}), 413, "M_TOO_LARGE")
    assert_error(world.c.call("PUT", f"{r}/send/{'t' * 256}/1", {"a": 1}), 413, "M_TOO_LARGE")
    assert_error(world.c.call("PUT", f"{r}/send/m.room.message/{'t' * 256}", {"body": "x"}), 400, "M_BAD_JSON")
    assert world.c.call("PUT", f"{r}/state/org.example/{'k' * 255}", {"a": 1})[0] == 200


# --- transaction IDs ------------------------------------------------------------------------

def test_transaction_id_is_scoped_to_the_path(world: World) -> None:
    """Spec: "Transaction identifiers": a retransmission is the same txnId on the same path."""
    r = f"{C}/rooms/{world.room}"
    first = world.send({"msgtype": "m.text", "body": "a"}, "scoped")
    assert world.send({"msgtype": "m.text", "body": "a"}, "scoped") == first
    other_type = world.send({"body": "b"}, "scoped", event_type="org.example.other")
    assert other_type != first
    status, redaction = world.c.call("PUT", f"{r}/redact/{first}/scoped", {})
    assert status == 200 and redaction["event_id"] not in (first, other_type)
    assert world.c.call("PUT", f"{r}/redact/{first}/scoped", {}) == (200, redaction)
    # An unknown room is "not in room" (403), as from Synapse: a stranger learns nothing of which rooms exist.
    assert_error(world.c.call("PUT", f"{C}/rooms/!nowhere:test.local/send/m.room.message/scoped", {"body": "x"}),
                 403, "M_FORBIDDEN")
    status, event = world.c.call("GET", f"{r}/event/{first}")
    assert event["unsigned"]["transaction_id"] == "scoped"


# --- limits ---------------------------------------------------------------------------------

def _limit_paths(world: World) -> dict[str, str]:
    return {
        "messages": f"{C}/rooms/{world.room}/messages",
        "context": f"{C}/rooms/{world.room}/context/{world.event}",
        "relations": f"{V1}/rooms/{world.room}/relations/{world.event}",
        "threads": f"{V1}/rooms/{world.room}/threads",
        "publicRooms": f"{C}/publicRooms",
        "notifications": f"{C}/notifications",
        "hierarchy": f"{V1}/rooms/{world.room}/hierarchy",
    }


LIMIT_ENDPOINTS = ["messages", "context", "relations", "threads", "publicRooms", "notifications", "hierarchy"]


@pytest.mark.parametrize("endpoint", LIMIT_ENDPOINTS)
@pytest.mark.parametrize("limit", ["-1", "-99999999999999999999", "abc", "1.5", "²", "0x10"])
def test_bad_limit(world: World, endpoint: str, limit: str) -> None:
    assert_error(world.c.call("GET", _limit_paths(world)[endpoint], query={"limit": limit}), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("endpoint", LIMIT_ENDPOINTS)
@pytest.mark.parametrize("limit", ["1000000", "99999999999999999999999999999"])
def test_huge_limit_is_capped(world: World, endpoint: str, limit: str) -> None:
    status, body = world.c.call("GET", _limit_paths(world)[endpoint], query={"limit": limit})
    assert status == 200, body


@pytest.mark.parametrize("endpoint", LIMIT_ENDPOINTS)
def test_limit_longer_than_int_takes(world: World, endpoint: str) -> None:
    """5000 digits is past Python's int() limit (4300): refused, never a 500."""
    assert_error(world.c.call("GET", _limit_paths(world)[endpoint], query={"limit": "9" * 5000}),
                 400, "M_INVALID_PARAM")


def test_bad_limit_in_bodies_and_filters(world: World) -> None:
    assert_error(world.c.call("POST", f"{C}/publicRooms", {"limit": -1}), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("POST", f"{C}/publicRooms", {"limit": "10"}), 400, "M_BAD_JSON")
    assert world.c.call("POST", f"{C}/publicRooms", {"limit": 10**30})[0] == 200
    for limit in (-1, 10**30, "10", 1.5):
        flt = json.dumps({"room": {"timeline": {"limit": limit}}})
        assert_error(world.c.call("GET", f"{C}/sync", query={"filter": flt}), 400, "M_BAD_JSON")
        assert_error(world.c.call("POST", f"{C}/user/@alice:test.local/filter",
                                  {"room": {"timeline": {"limit": limit}}}), 400, "M_BAD_JSON")
    assert_error(world.c.call("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
                              {"lists": {"a": {"ranges": [[0, 10]], "timeline_limit": -1}}}), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
                              {"lists": {"a": {"ranges": [[-5, 0]]}}}), 400, "M_INVALID_PARAM")


def test_json_in_query_parameters_nested_too_deeply(world: World) -> None:
    """A filter or token whose JSON is nested deeper than the decoder goes is a 400, as Synapse's
    M_NOT_JSON / M_INVALID_PARAM, not a 500 (request bodies had this already)."""
    import base64
    deep = '{"x":' * 3000 + "{}" + "}" * 3000
    r = f"{C}/rooms/{world.room}"
    for path in (f"{C}/sync", f"{r}/messages", f"{r}/context/{world.event}"):
        assert_error(world.c.call("GET", path, query={"filter": deep}), 400, "M_NOT_JSON")
    token = "n" + base64.urlsafe_b64encode(("[" * 3000 + "]" * 3000).encode()).decode().rstrip("=")
    assert_error(world.c.call("GET", f"{C}/publicRooms", query={"since": token}), 400, "M_INVALID_PARAM")


# --- tokens ---------------------------------------------------------------------------------

BAD_TOKENS = ["garbage", "s-1", "999999999999999999999999", "\x00", "t1_2_3", "-5", "ps1_1_1_1_1_1_1_²",
              "ps1_" + "9" * 30 + "_0_0_0_0_0_0"]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=range(len(BAD_TOKENS)))
def test_malformed_pagination_tokens(world: World, token: str) -> None:
    r = f"{C}/rooms/{world.room}"
    for path, name in [(f"{C}/sync", "since"), (f"{r}/messages", "from"), (f"{r}/messages", "to"),
                       (f"{V1}/rooms/{world.room}/relations/{world.event}", "from"),
                       (f"{V1}/rooms/{world.room}/threads", "from"), (f"{C}/notifications", "from"),
                       (f"{C}/publicRooms", "since"), (f"{V1}/rooms/{world.room}/hierarchy", "from"),
                       (f"{r}/members", "at")]:
        result = world.c.call("GET", path, query={name: token})
        assert result[0] == 400 and result[1]["errcode"] == "M_INVALID_PARAM", (path, name, result)
    assert_error(world.c.call("GET", f"{C}/keys/changes", query={"from": token, "to": token}), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("POST", f"{C}/publicRooms", {"since": token}), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", {},
                              query={"pos": token}), 400, "M_UNKNOWN_POS")
    assert_error(world.c.call("POST", f"{C}/search",
                              {"search_categories": {"room_events": {"search_term": "x"}}},
                              query={"next_batch": token}), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("value", ["²", "abc", "-1", "9" * 30])
def test_unknown_numeric_ids_are_not_found(world: World, value: str) -> None:
    quoted = urllib.parse.quote(value)
    assert_error(world.c.call("GET", f"{C}/user/@alice:test.local/filter/{quoted}"), 404, "M_NOT_FOUND")
    assert_error(world.c.call("GET", f"{C}/sync", query={"filter": value}), 400, "M_INVALID_PARAM")   # as Synapse
    assert_error(world.c.call("GET", f"{C}/room_keys/version/{quoted}"), 404, "M_NOT_FOUND")
    assert_error(world.c.call("GET", f"{C}/room_keys/keys", query={"version": value}), 404, "M_NOT_FOUND")


def test_sliding_sync_to_device_since_of_odd_digits(world: World) -> None:
    status, body = world.c.call("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
                                {"extensions": {"to_device": {"enabled": True, "since": "²"}}})
    assert status == 200 and body["extensions"]["to_device"]["events"] == []


# --- identifiers of bad grammar -------------------------------------------------------------

BAD_ROOM_IDS = ["notaroom", "!", "!nocolon", "!a:", "%00", "!" + "a" * 300 + ":test.local", "!a:te%20st"]


@pytest.mark.parametrize("room_id", BAD_ROOM_IDS, ids=range(len(BAD_ROOM_IDS)))
def test_bad_room_ids(world: World, room_id: str) -> None:
    assert_error(world.c.call("GET", f"{C}/rooms/{room_id}/state"), 403, "M_FORBIDDEN")
    assert_error(world.c.call("GET", f"{C}/rooms/{room_id}/messages"), 403, "M_FORBIDDEN")
    assert_error(world.c.call("PUT", f"{C}/rooms/{room_id}/send/m.room.message/bad-room", {"body": "x"}),
                 403, "M_FORBIDDEN")
    expected = (400, "M_INVALID_PARAM") if not room_id.startswith("!") else (404, "M_NOT_FOUND")
    assert_error(world.c.call("POST", f"{C}/join/{room_id}", {}), *expected)


@pytest.mark.parametrize("event_id", ["notanevent", "$", "$nocolon", "%00", "$" + "a" * 300])
def test_bad_event_ids(world: World, event_id: str) -> None:
    r = f"{C}/rooms/{world.room}"
    assert_error(world.c.call("GET", f"{r}/event/{event_id}"), 404, "M_NOT_FOUND")
    assert_error(world.c.call("GET", f"{r}/context/{event_id}"), 404, "M_NOT_FOUND")
    assert_error(world.c.call("PUT", f"{r}/redact/{event_id}/bad-event", {}), 404, "M_NOT_FOUND")


BAD_USER_IDS = ["alice", "@", "@:test.local", "@alice", "@alice:", "@al%20ice:test.local", "@a%00:test.local",
                "@" + "a" * 300 + ":test.local", "@alice:test.local:%C2%B2", "@alice:test.local:99999"]


@pytest.mark.parametrize("user_id", BAD_USER_IDS, ids=range(len(BAD_USER_IDS)))
def test_bad_user_ids(world: World, user_id: str) -> None:
    plain = urllib.parse.unquote(user_id)
    assert_error(world.c.call("GET", f"{C}/profile/{user_id}"), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("GET", f"{C}/presence/{user_id}/status"), 400, "M_INVALID_PARAM")
    assert_error(world.c.call("POST", f"{C}/users/{user_id}/report", {"reason": "x"}), 400, "M_INVALID_PARAM")
    if "%00" not in user_id:   # a JSON string may hold "%00" literally; that is a valid historical ID
        assert_error(world.c.call("POST", f"{C}/rooms/{world.room}/invite", {"user_id": plain}), 400, "M_INVALID_PARAM")
        assert_error(world.c.call("POST", f"{C}/rooms/{world.room}/ban", {"user_id": plain}), 400, "M_INVALID_PARAM")
        # One bad ID in a key query is left out, not the whole query refused (as Synapse).
        status, body = world.c.call("POST", f"{C}/keys/query", {"device_keys": {plain: [], "@alice:test.local": []}})
        assert status == 200 and plain not in body["device_keys"] and "@alice:test.local" in body["device_keys"]


@pytest.mark.parametrize("server", ["..", "%2e%2e", "a%00", "test.local:%C2%B2", "test.local:99999", "a_b"])
def test_bad_media_server_names(world: World, server: str) -> None:
    assert_error(world.c.call("GET", f"{V1}/media/download/{server}/{world.media}"), 400, "M_INVALID_PARAM")


# --- media IDs and filenames ----------------------------------------------------------------

@pytest.mark.parametrize("media_id", ["..", "%2e%2e", "%2e%2e%5c%2e%2e%5cetc", "%00", "a%00b", "." + "a" * 300,
                                      "..%5Cdata"])
def test_media_id_traversal_is_unknown_media(world: World, media_id: str) -> None:
    for path in (f"{V1}/media/download/test.local/{media_id}", f"/_matrix/media/v3/download/test.local/{media_id}",
                 f"{V1}/media/thumbnail/test.local/{media_id}?width=32&height=32"):
        assert_error(world.c.call("GET", path), 404, "M_NOT_FOUND")
    status, _, content = world.c.raw("PUT", f"/_matrix/media/v3/upload/test.local/{media_id}", b"x",
                                     headers={"Content-Type": "text/plain"})
    assert (status, json.loads(content)["errcode"]) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("media_id", ["..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd", "../../../../etc/passwd",
                                      "%2e%2e/%2e%2e/etc/passwd"])
def test_media_id_with_slashes_matches_no_route(world: World, media_id: str) -> None:
    status, _, content = world.c.raw("GET", f"{V1}/media/download/test.local/{media_id}")
    assert status == 404 and json.loads(content)["errcode"] in ("M_NOT_FOUND", "M_UNRECOGNIZED")
    assert b"root:" not in content


# RFC 6266 / 8187: a token filename, or filename*= with only attr-chars and %XX escapes.
SAFE_DISPOSITION = re.compile(r"(inline|attachment)(; filename=[A-Za-z0-9!#$&+.^_`|~-]+"
                              r"|; filename\*=utf-8''[A-Za-z0-9!#$&+.^_`|~%-]+)?")


@pytest.mark.parametrize("file_name", ["..%2f..%2fetc%2fpasswd", "..", "%2e%2e", "a%00b",
                                       "a%22%3B%20filename%3Devil", "%C3%BC.txt", "C%3A%5Cwin.ini"])
def test_download_file_name_is_only_a_name(world: World, file_name: str) -> None:
    status, headers, content = world.c.raw("GET", f"{V1}/media/download/test.local/{world.media}/{file_name}")
    assert (status, content) == (200, b"hello")
    assert SAFE_DISPOSITION.fullmatch(headers["Content-Disposition"]), headers["Content-Disposition"]


def test_download_file_name_with_crlf_matches_no_route(world: World) -> None:
    status, headers, content = world.c.raw(
        "GET", f"{V1}/media/download/test.local/{world.media}/a%0d%0aX-Injected:%201")
    assert (status, json.loads(content)["errcode"]) == (404, "M_UNRECOGNIZED")
    assert headers.get("X-Injected") is None


@pytest.mark.parametrize("filename", ["../../etc/passwd", "/etc/passwd", "a\r\nX-Injected: 1", 'a";b=c', "a\x00b",
                                      "C:\\Windows\\win.ini"])
def test_upload_filename_cannot_inject_headers_or_paths(world: World, filename: str) -> None:
    status, _, content = world.c.raw("POST", "/_matrix/media/v3/upload", b"payload", query={"filename": filename},
                                     headers={"Content-Type": "text/plain"})
    assert status == 200, content
    media_id = json.loads(content)["content_uri"].rsplit("/", 1)[1]
    status, headers, content = world.c.raw("GET", f"{V1}/media/download/test.local/{media_id}")
    assert (status, content) == (200, b"payload")
    assert headers.get("X-Injected") is None
    assert SAFE_DISPOSITION.fullmatch(headers["Content-Disposition"]), headers["Content-Disposition"]
    assert headers["Content-Disposition"].startswith("inline; filename*=utf-8''")


def test_upload_filename_too_long(world: World) -> None:
    status, _, content = world.c.raw("POST", "/_matrix/media/v3/upload", b"x", query={"filename": "a" * 1001},
                                     headers={"Content-Type": "text/plain"})
    assert (status, json.loads(content)["errcode"]) == (400, "M_UNKNOWN")


# --- query parameters of the wrong type -----------------------------------------------------

def test_query_parameters_of_the_wrong_type(world: World) -> None:
    r = f"{C}/rooms/{world.room}"
    cases = [
        (f"{C}/sync", {"full_state": "maybe"}),
        (f"{C}/sync", {"set_presence": "bogus"}),
        (f"{C}/sync", {"timeout": "soon"}),
        (f"{C}/sync", {"timeout": "1.5"}),
        (f"{r}/messages", {"dir": "sideways"}),
        (f"{r}/members", {"membership": "bogus"}),
        (f"{r}/members", {"not_membership": "bogus"}),
        (f"{r}/state/m.room.create/", {"format": "bogus"}),
        (f"{V1}/rooms/{world.room}/timestamp_to_event", {"ts": "abc", "dir": "f"}),
        (f"{V1}/rooms/{world.room}/timestamp_to_event", {"ts": "1", "dir": "x"}),
        (f"{V1}/rooms/{world.room}/timestamp_to_event", {"ts": "9" * 30, "dir": "f"}),
        (f"{V1}/rooms/{world.room}/hierarchy", {"max_depth": "-1"}),
        (f"{V1}/rooms/{world.room}/hierarchy", {"suggested_only": "maybe"}),
        (f"{V1}/media/thumbnail/test.local/{world.media}", {"width": "abc", "height": "32"}),
        (f"{V1}/media/thumbnail/test.local/{world.media}", {"width": "-1", "height": "32"}),
        (f"{V1}/media/thumbnail/test.local/{world.media}", {"width": "32", "height": "32", "method": "bogus"}),
        (f"{V1}/media/download/test.local/{world.media}", {"timeout_ms": "abc"}),
        (f"{C}/publicRooms", {"server": "a b"}),
    ]
    for path, query in cases:
        status, body = world.c.call("GET", path, query=query)
        assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), (path, query, body)
    assert_error(world.c.call("GET", f"{C}/keys/changes"), 400, "M_MISSING_PARAM")
    assert_error(world.c.call("GET", f"{C}/register/available", token=False), 400, "M_MISSING_PARAM")


def test_body_fields_of_the_wrong_type(world: World) -> None:
    r = f"{C}/rooms/{world.room}"
    cases = [
        ("PUT", f"{r}/typing/@alice:test.local", {"typing": "yes"}, "M_BAD_JSON"),
        ("PUT", f"{r}/typing/@alice:test.local", {"typing": True, "timeout": "x"}, "M_BAD_JSON"),
        ("PUT", f"{C}/sendToDevice/m.x/wrong-type", {"messages": "x"}, "M_BAD_JSON"),
        ("POST", f"{C}/keys/query", {"device_keys": {"@alice:test.local": "x"}}, "M_BAD_JSON"),
        ("POST", f"{C}/keys/upload", {"device_keys": "x"}, "M_BAD_JSON"),
        ("POST", f"{C}/createRoom", {"invite": "x"}, "M_BAD_JSON"),
        ("POST", f"{C}/createRoom", {"name": 5}, "M_BAD_JSON"),
        ("POST", f"{C}/createRoom", {"room_version": 5}, "M_UNSUPPORTED_ROOM_VERSION"),
        ("PUT", f"{r}/redact/{world.event}/wrong-type", {"reason": 5}, "M_BAD_JSON"),
        ("POST", f"{r}/read_markers", {"m.fully_read": 5}, "M_INVALID_PARAM"),
        ("PUT", f"{C}/presence/@alice:test.local/status", {"presence": "bogus"}, "M_INVALID_PARAM"),
        ("PUT", f"{C}/profile/@alice:test.local/displayname", {"displayname": 5}, "M_BAD_JSON"),
        ("POST", f"{C}/register", {"username": 5, "password": "x"}, "M_INVALID_USERNAME"),
        ("POST", f"{C}/login", {"type": "m.login.password", "identifier": "x", "password": "x"}, "M_BAD_JSON"),
    ]
    for method, path, body, errcode in cases:
        status, answer = world.c.call(method, path, body, token=not path.endswith(("/register", "/login")))
        assert (status, answer.get("errcode")) == (400, errcode), (method, path, body, answer)


def test_malformed_authorization(world: World) -> None:
    path = f"{C}/account/whoami"
    # Not a Bearer token: M_UNKNOWN_TOKEN, as tests/client/test_errors.py fixes (Synapse says M_MISSING_TOKEN).
    assert_error(world.c.call("GET", path, headers={"Authorization": "Basic YTpi"}, token=False), 401, "M_MISSING_TOKEN")
    assert_error(world.c.call("GET", path, headers={"Authorization": "Bearer"}, token=False), 401, "M_MISSING_TOKEN")
    assert_error(world.c.call("GET", path, headers={"Authorization": "Bearer nope"}, token=False), 401, "M_UNKNOWN_TOKEN")
    assert_error(world.c.call("GET", path, query={"access_token": "x" * 10000}, token=False), 401, "M_UNKNOWN_TOKEN")
    assert_error(world.c.call("GET", path, token=False), 401, "M_MISSING_TOKEN")
