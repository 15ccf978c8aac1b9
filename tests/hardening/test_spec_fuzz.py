"""Fuzz every implemented client-server endpoint with schemathesis, against the spec's OpenAPI files.

The spec's OpenAPI files (one per area, with `$ref`s into `definitions/` and the event schemas)
are bundled into one document here: every `$ref` is inlined, paths get the base path each file's
`servers` entry names, and only the path/method pairs the app registers are kept. Each operation
is then driven by schemathesis-generated cases, positive (fits the schema) and negative (does
not), against a real server on loopback, authenticated as a registered user. Half of the cases
have their path parameters swapped for IDs that exist (a room, an event, a media ID, the user...),
so handlers get past "not found" as well.

Checks, on every response:
- no status >= 500;
- every 4xx body is a JSON object with a string `errcode` and a string `error`
  (the one exception is a UIA challenge, a 401 with `flows`/`params`/`session`);
- positive cases: the response conforms to the spec's schema for its status, when the spec
  defines one (schemathesis's `response_schema_conformance`), except for the deviations below.

Documented deviations (Synapse-compatible behaviour that the schema check would flag):
- Error statuses the spec does not list for an operation (e.g. 400 M_INVALID_PARAM for a bad
  `limit`, 404 M_NOT_FOUND for an unknown room) are allowed: the spec's response lists are not
  exhaustive, and only the body shape is checked for them.
- Media download/thumbnail bodies are bytes, not JSON; only status and errors are checked.
- Negative cases get only the status and error-shape checks: a schema-invalid request may
  legitimately succeed (e.g. an unknown extra field), so its 2xx body is not held to the schema.
- Where Synapse answers outside the schema and clients rely on it, the body is checked in
  Synapse's shape (SYNAPSE_SHAPES): null for absent device fields and absent member profiles
  (the schema says string/integer), and `{}` from /voip/turnServer when no TURN server is
  configured (the schema requires credentials).

To keep one operation from spoiling the next: each operation logs in a fresh device (so /logout
and /logout/all only end that one), re-joins the known public room (a generated /leave may have
left it), and generated `timeout`/`timeout_ms` values are set to 0 (no long-polls). Operations
with nothing that can be made schema-invalid have no negative cases (hypothesis reports them
unsatisfiable, which passes).

Bounded for CI: POCKETSERVER_FUZZ_EXAMPLES (default 20) examples per operation and mode,
`derandomize=True` so a run is reproducible. Raise it for a long run, e.g.
`POCKETSERVER_FUZZ_EXAMPLES=200 pytest tests/hardening/test_spec_fuzz.py`.

Spec: client-server-api (all areas the server implements), "Standard error response".
"""
from __future__ import annotations

import hashlib
import json
import hmac
import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")   # brings requests and PyYAML with it
import requests  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from pocketserver.app import create_app  # noqa: E402
from pocketserver.config import load  # noqa: E402
from tests.conftest import SHARED_SECRET, RunningServer, start_server  # noqa: E402

SPEC_DIR = Path(os.environ.get("POCKETSERVER_SPEC_DIR", "/work/shared/matrix-spec/data/api/client-server"))
EXAMPLES = int(os.environ.get("POCKETSERVER_FUZZ_EXAMPLES", "20"))
METHODS = ("get", "put", "post", "delete")

if not SPEC_DIR.is_dir():
    pytest.skip(f"matrix-spec OpenAPI files not found at {SPEC_DIR}", allow_module_level=True)


# --- bundling -------------------------------------------------------------------------------

class _Bundler:
    """Inlines every `$ref` (into the same file, `definitions/` or the event schemas)."""

    def __init__(self) -> None:
        self.files: dict[Path, Any] = {}

    def load(self, path: Path) -> Any:
        path = path.resolve()
        if path not in self.files:
            self.files[path] = yaml.safe_load(path.read_text())
        return self.files[path]

    @staticmethod
    def _pointer(doc: Any, fragment: str) -> Any:
        node = doc
        for part in (p for p in fragment.split("/") if p):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def resolve(self, node: Any, where: Path, stack: tuple[tuple[Path, str], ...] = ()) -> Any:
        if isinstance(node, list):
            return [self.resolve(item, where, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" not in node:
            return {key: self.resolve(value, where, stack) for key, value in node.items()}
        file, _, fragment = node["$ref"].partition("#")
        target = (where.parent / file).resolve() if file else where.resolve()
        if (target, fragment) in stack:       # a recursive schema: cut the cycle open
            return {}
        out = self.resolve(self._pointer(self.load(target), fragment), target, stack + ((target, fragment),))
        siblings = {key: self.resolve(value, where, stack) for key, value in node.items() if key != "$ref"}
        return {**out, **siblings} if siblings and isinstance(out, dict) else out


def _shape(path: str) -> str:
    """A path with its parameters blanked, for comparing spec paths with Quart rules."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path).rstrip("/")


def registered_routes() -> set[tuple[str, str]]:
    app = create_app(load(environ={}, flags={"server_name": "test.local", "data_dir": "/nonexistent"}))
    return {(_shape(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() for method in rule.methods or ()}


def bundle_spec(spec_dir: Path = SPEC_DIR) -> dict[str, Any]:
    """One OpenAPI document holding every spec operation the app registers, all `$ref`s inlined."""
    routes = registered_routes()
    bundler = _Bundler()
    paths: dict[str, dict[str, Any]] = {}
    for file in sorted(spec_dir.glob("*.yaml")):
        doc = bundler.load(file)
        base = doc["servers"][0]["variables"]["basePath"]["default"]
        for path, item in (doc.get("paths") or {}).items():
            for method in METHODS:
                if method not in item or (_shape(base + path), method) not in routes:
                    continue
                operation = bundler.resolve(item[method], file)
                operation.pop("security", None)     # the token is set on every case instead
                if "parameters" in item:
                    operation.setdefault("parameters", []).extend(bundler.resolve(item["parameters"], file))
                paths.setdefault(base + path, {})[method] = operation
    return {"openapi": "3.1.0", "info": {"title": "pocketserver client-server", "version": "1"},
            "paths": paths}


SPEC = bundle_spec()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = {f"{op.method.upper()} {op.path}": op
              for op in (result.ok() for result in SCHEMA.get_all_operations())}


# --- the server under test ------------------------------------------------------------------

def _register(base_url: str, username: str, password: str) -> dict[str, Any]:
    url = f"{base_url}/_synapse/admin/v1/register"
    nonce = requests.get(url, timeout=10).json()["nonce"]
    mac = hmac.new(SHARED_SECRET.encode(), b"\x00".join(
        [nonce.encode(), username.encode(), password.encode(), b"notadmin"]), hashlib.sha1).hexdigest()
    resp = requests.post(url, json={"nonce": nonce, "username": username, "password": password,
                                    "admin": False, "mac": mac}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


class Target:
    """The running server, a user, and IDs of things that exist on it."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.base = server.base_url
        self.session = requests.Session()
        _register(self.base, "fuzzer", "fuzz-password")
        _register(self.base, "other", "other-password")
        self.token = self.login()
        auth = {"Authorization": f"Bearer {self.token}"}
        c = f"{self.base}/_matrix/client/v3"
        room = self.session.post(f"{c}/createRoom", json={"room_alias_name": "fuzz", "preset": "public_chat"},
                                 headers=auth).json()
        event = self.session.put(f"{c}/rooms/{room['room_id']}/send/m.room.message/t1",
                                 json={"msgtype": "m.text", "body": "hi"}, headers=auth).json()
        media = self.session.post(f"{self.base}/_matrix/media/v3/upload", data=b"hello",
                                  headers={**auth, "Content-Type": "text/plain"}).json()
        flt = self.session.post(f"{c}/user/@fuzzer:test.local/filter", json={}, headers=auth).json()
        whoami = self.session.get(f"{c}/account/whoami", headers=auth).json()
        self.known: dict[str, str] = {
            "roomId": room["room_id"], "roomIdOrAlias": room["room_id"], "eventId": event["event_id"],
            "userId": "@fuzzer:test.local", "serverName": "test.local",
            "mediaId": media["content_uri"].rsplit("/", 1)[1], "filterId": flt["filter_id"],
            "deviceId": whoami["device_id"], "roomAlias": "#fuzz:test.local",
        }

    def login(self) -> str:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "fuzzer"},
                "password": "fuzz-password"}
        try:
            resp = self.session.post(f"{self.base}/_matrix/client/v3/login", json=body, timeout=10)
        except requests.ConnectionError:
            # The pooled connection was closed by the server as the previous operation's last
            # (malformed) request ended it; a POST is not retried by requests itself. Seen once
            # in ~290 operations at 100 examples each on a loaded machine.
            resp = self.session.post(f"{self.base}/_matrix/client/v3/login", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = start_server(tmp_path_factory.mktemp("fuzz"), rc_media_upload_per_second=1000.0,
                          rc_media_upload_burst=1000)
    try:
        yield Target(server)
    finally:
        assert server.stop() == 0, "server did not shut down cleanly"
    log = (server.data_dir.parent / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


# --- the checks -----------------------------------------------------------------------------

UIA_KEYS = {"flows", "params", "session"}


def check_error_shape(response: requests.Response, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:500]}"
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{label}: {response.status_code} body is not JSON: {response.text[:300]!r}")
    assert isinstance(body, dict), f"{label}: error body is not an object: {body!r}"
    if response.status_code == 401 and "flows" in body and UIA_KEYS <= body.keys():
        return
    assert isinstance(body.get("errcode"), str) and isinstance(body.get("error"), str), \
        f"{label}: {response.status_code} error body lacks errcode/error: {body!r}"


def _clamp_waits(case: Any) -> None:
    """Long-poll parameters are capped so a generated `timeout` cannot stall the run."""
    for name in ("timeout", "timeout_ms"):
        value = case.query.get(name) if case.query else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            case.query[name] = 0
        elif isinstance(value, str) and value.isdigit() and int(value) > 0:
            case.query[name] = "0"


# Operations whose successful bodies are Synapse's shape, not the schema's, and why (see the docstring).
SYNAPSE_SHAPES = {
    "GET /_matrix/client/v3/devices": "absent display_name, last_seen_ip and last_seen_ts are null",
    "GET /_matrix/client/v3/devices/{deviceId}": "absent display_name, last_seen_ip and last_seen_ts are null",
    "GET /_matrix/client/v3/rooms/{roomId}/joined_members": "a member's absent display_name and avatar_url are null",
    "GET /_matrix/client/v3/voip/turnServer": "{} when no TURN server is configured",
}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _as_schema_sees_it(label: str, response: Any) -> Any | None:
    """The response to hold to the schema: Synapse's nulls dropped for SYNAPSE_SHAPES, None to skip."""
    if label not in SYNAPSE_SHAPES:
        return response
    body = response.json()
    if body == {} and label.endswith("/voip/turnServer"):
        return None
    content = json.dumps(_without_nulls(body)).encode()
    return type(response)(status_code=response.status_code, headers=response.headers, content=content,
                          request=response.request, elapsed=response.elapsed, verify=response.verify)


def _conformance_applies(case: Any, response: requests.Response) -> bool:
    if response.status_code >= 400:
        return False           # error statuses: body shape checked above (see module docstring)
    # schemathesis's Response keeps headers as lower-cased names with lists of values.
    values = response.headers.get("content-type") or [""]
    return values[0].startswith("application/json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation(target: Target, label: str, mode: GenerationMode) -> None:
    operation = OPERATIONS[label]
    token = target.login()   # a fresh device per operation, so /logout cannot spoil the others
    headers = {"Authorization": f"Bearer {token}"}
    # An earlier operation may have left the known room; it is public, so join it again.
    target.session.post(f"{target.base}/_matrix/client/v3/join/{target.known['roomId']}",
                        json={}, headers=headers, timeout=10)
    known = dict(target.known)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
    def run(case: Any, use_known: bool) -> None:
        if use_known and case.path_parameters:
            case.path_parameters = {name: known.get(name, value)
                                    for name, value in case.path_parameters.items()}
        _clamp_waits(case)
        response = case.call(base_url=target.base, session=target.session, headers=headers, timeout=30)
        check_error_shape(response, label)
        if mode is GenerationMode.POSITIVE and _conformance_applies(case, response):
            checked = _as_schema_sees_it(label, response)
            if checked is not None:
                case.validate_response(checked, checks=[response_schema_conformance])

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can be made schema-invalid (e.g. one free-form string
        # path parameter): there is no negative case to send.
        assert mode is GenerationMode.NEGATIVE
