#!/usr/bin/env python3
"""Send the same client-API requests to Synapse and to pocketserver; compare what they answer.

Where the spec leaves an answer open, clients are written against Synapse, so its status codes
and errcodes are the ones to match (the project brief). This tool finds where the two differ.
Both servers get the same users and rooms (set up through the API alone), then ~890 requests:
every room endpoint as a member, an invitee, a user who left, a banned user, a stranger, and
for rooms that do not exist or IDs of bad grammar; bodies with missing or mistyped fields; other
users' data; then E2EE keys (signed once, in parity_keys.json) and what a second device sees in
incremental /sync and sliding sync after others act. For each request it compares the status and
the `errcode`, and for two 200s the key paths of the JSON bodies.

Differences fall into three groups:
- explained here (KNOWN): pocketserver answers otherwise on purpose, with the reason;
- Synapse answers 5xx and pocketserver a 4xx, or the same status with only Synapse's generic
  M_UNKNOWN (or no errcode) against a specific errcode: shown, not counted;
- the rest: printed as unexplained, and the exit status is 1.

Start both servers on loopback with the same server name, open registration off and shared-
secret registration on (the benchmark's settings do this; see docs/synapse-parity.md):

    ../shared/bench/synapse.sh start        # Synapse on 127.0.0.1:18008, a fresh database
    POCKETSERVER_DATA_DIR=$(mktemp -d) pocketserver serve --config bench/pocketserver-bench.toml &
    python3 tools/synapse_parity.py --synapse http://127.0.0.1:18008 --other http://127.0.0.1:18028

or let it start and stop both itself (pocketserver from this checkout, with the Python that runs
the tool): `.venv/bin/python tools/synapse_parity.py --start`.

Each run needs fresh databases on both (it registers the same users). Only loopback URLs are
accepted. Standard library only.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Iterator, NamedTuple

C = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
USERS = ("alice", "bob", "carol", "dave", "erin")

_NOT_HERE = "invite/kick/unban in a room this server does not have: 404 'not on this server' (Synapse 403/404)"
_BAD_ROOM_ID = "a room ID of bad grammar: 400"
_PUBLISH = ("a member who may send the room's m.room.canonical_alias may publish it in the server's own directory "
            "(Synapse's default room_list_publication_rules let only server admins)")
# (user, method, path template) -> why pocketserver answers otherwise. Templates are the cases'
# own, with {room} standing for any room placeholder.
KNOWN: dict[tuple[str | None, str, str], str] = {
    ("alice", "POST", C + "/rooms/{room}/invite"):
        "inviting a local user who does not exist: 404 (Synapse 200 makes an invite nobody can see)",
    ("alice", "POST", C + "/createRoom#invite-nobody"):
        "createRoom refuses the invitees /invite refuses (a local user who does not exist)",
    ("*", "POST", C + "/rooms/{room}/unban"):
        "unbanning a user who is not banned: 403, M_BAD_STATE for a member, M_FORBIDDEN for one who is not in "
        "the room (Synapse 200 when the target has no membership, and M_BAD_STATE before the sender check)",
    ("*", "POST", C + "/rooms/{room}/receipt/m.read/{unknownevent}"):
        "a receipt for an event that does not exist, or a room one is not in: 404/403 (Synapse stores it)",
    ("*", "POST", C + "/rooms/{room}/read_markers"):
        "read markers in a room one is not in: 403 (Synapse stores them)",
    ("*", "PUT", C + "/rooms/{room}/redact/{unknownevent}/$TXN"):
        "redacting an event that does not exist: 404, or 403 outside the room (Synapse sends the redaction)",
    ("*", "POST", C + "/rooms/{room}/kick#outside"): _NOT_HERE,
    ("*", "POST", C + "/rooms/{room}/invite#outside"): _NOT_HERE,
    ("*", "GET", C + "/rooms/{room}/context/{unknownevent}"):
        "context in a room one is not in: 403 before looking at the event (Synapse looks first, 404)",
    ("bob", "*", "#banned"):
        "a banned user may read the room up to the ban, as a user who left (Synapse refuses banned users, "
        "a restriction its own code calls bogus; the spec names no difference)",
    ("dave", "*", "#left-after"):
        "context/relations of an event after the user left: 404, the spec's answer (Synapse 403)",
    ("dave", "POST", C + "/rooms/{room}/kick"):
        "kicking oneself after leaving repeats the current membership: 200, nothing sent (Synapse 403)",
    ("*", "*", "#departed-reads"):
        "reads by a user who left (timestamp_to_event, members?membership=join) are served up to the leave",
    ("alice", "GET", C + "/user/{alice}/rooms/{badroom}/tags"): _BAD_ROOM_ID,
    ("alice", "PUT", C + "/user/{alice}/rooms/{badroom}/tags/u.x"): _BAD_ROOM_ID,
    ("alice", "*", "#profile-others"):
        "changing another user's profile or presence: 403 (Synapse 400 M_FORBIDDEN, or 400 for an ID of "
        "bad grammar); remote profiles 404 (no federation)",
    ("alice", "*", "#no-junk-invite"):
        "an invite to a local user who does not exist, written as member state, is refused as /invite refuses it "
        "(404); so kicking or reading that member then finds none (Synapse 200: its invite nobody can see exists)",
    ("alice", "*", "#filters-of-bad-ids"):
        "another user's filters: 403 whatever the ID's grammar (Synapse checks the grammar first, 400)",
    ("alice", "DELETE", C + "/devices/NOPE"):
        "deleting a device that does not exist: 404 at once (Synapse asks for UIA first, 401)",
    ("alice", "GET", C + "/user/{alice}/filter/abc"): "a filter ID that is not a number is not found: 404",
    ("*", "*", "#strict-values"):
        "values of the wrong type or range are refused, 400 (Synapse accepts them: is_direct 'yes', "
        "visibility 'bogus', limit -1, membership 'bogus', typing 'yes', presence.limit -1, "
        "keys/claim without one_time_keys)",
    ("alice", "POST", C + "/createRoom#initial-state-no-content"):
        "an initial_state entry without content gets {} (Synapse 500)",
    ("alice", "PUT", C + "/rooms/{pub}/state/m.room.server_acl"):
        "a server ACL is not checked against this server's own name: federation is off",
    ("*", "*", "#no-email"):
        "3PID/email endpoints are not served: 404 M_UNRECOGNIZED (Synapse 400 'disabled'); capabilities say so",
    ("*", "*", "#registration-config"):
        "the benchmark's pocketserver settings allow registration, Synapse's do not",
    (None, "GET", C + "/publicRooms"):
        "the public room directory needs no token (the spec's security: none; Synapse's default asks)",
    (None, "GET", "/_matrix/federation/v1/openid/userinfo"):
        "the OpenID user-info endpoint is served (Synapse's listener here has federation off)",
    ("alice", "POST", C + "/join/%23nope:elsewhere.example"): "remote aliases: 404, no federation (Synapse 502)",
    ("alice", "GET", V1 + "/media/download/elsewhere.example/abc"): "remote media: 404, no federation",
    ("alice", "GET", V1 + "/room_summary/{unknownroom}"): "an unknown room's summary: 404 (Synapse 400 'missing via')",
    ("alice", "GET", V1 + "/admin/lock/{bob}"): "account locking (spec v1.16) is served; Synapse has no such route",
    ("alice", "GET", V1 + "/admin/suspend/{bob}"): "account suspension (spec v1.16) is served",
    ("alice", "GET", C + "/events"): "the deprecated global /events stream is not served (peeking one room is)",
    ("alice", "GET", C + "/initialSync"): "the deprecated global /initialSync is not served",
    ("alice", "GET", C + "/pushrules/bogus/override/nope"): "an unknown scope: 404 M_UNRECOGNIZED (Synapse 400)",
    ("alice", "POST", C + "/search"): "a search naming no category finds nothing: 200 (Synapse 400)",
    ("alice", "GET", C + "/pushrules/global/bogus/nope"): "an unknown kind: M_INVALID_PARAM (Synapse M_UNRECOGNIZED)",
    ("alice", "PUT", C + "/rooms/{pub}/typing/{bob}"):
        "another user's typing: 403 M_FORBIDDEN (Synapse 400 M_FORBIDDEN)",
    (None, "POST", C + "/login"): "a login without a password: M_BAD_JSON (Synapse M_INVALID_PARAM)",
    ("alice", "GET", C + "/pushrules/global/content/"):
        "listing one kind of push rules is not in the spec (Synapse's legacy route): 404 M_UNRECOGNIZED",
    ("alice", "PUT", C + "/directory/list/room/{space}"): _PUBLISH,
    ("erin", "PUT", C + "/directory/list/room/{kr}"): _PUBLISH,
}
# Which cases the '#...' groups above cover, by (method, template, user) tests on the case.
GROUPS = {
    "#banned": lambda c: c.user == "bob" and "{banr}" in c.template,
    "#left-after": lambda c: c.user == "dave" and "{pub}" in c.template and ("/context/" in c.template
                                                                             or "/relations/" in c.template),
    "#departed-reads": lambda c: c.user == "dave" and "{pub}" in c.template and (
        "timestamp_to_event" in c.template or "members?membership=join" in c.template),
    "#profile-others": lambda c: c.template.startswith((C + "/profile/", C + "/presence/")) and c.user == "alice" and (
        c.method != "GET" or "{remoteuser}" in c.template or "{baduser}" in c.template or "{nobody}" in c.template),
    "#no-junk-invite": lambda c: "{nobody}" in c.template + json.dumps(c.body) and (
        "/state/m.room.member/" in c.template or c.template.endswith("/kick")),
    "#filters-of-bad-ids": lambda c: "/filter" in c.template and "{baduser}" in c.template,
    "#strict-values": lambda c: c.strict,
    "#no-email": lambda c: "3pid" in c.template or "email" in c.template,
    "#registration-config": lambda c: "/register" in c.template,
}


class Case(NamedTuple):
    user: str | None
    method: str
    template: str
    body: Any = None
    tag: str = ""          # a '#...' suffix some KNOWN entries name
    strict: bool = False   # a value pocketserver refuses on purpose (the '#strict-values' group)
    save: str = ""         # keep the answer's next_batch/pos/event_id/room_id/... as {save} for later cases
    raw: bytes | None = None   # a body sent as it is (an upload), with raw_type as its Content-Type
    raw_type: str = "application/octet-stream"


class Server:
    """One homeserver under test, with the IDs the set-up made on it."""

    def __init__(self, label: str, base: str, secret: str) -> None:
        self.label, self.base, self.secret = label, base.rstrip("/"), secret
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never a proxy

    def call(self, method: str, path: str, body: Any = None, user: str | None = None,
             raw: bytes | None = None, raw_type: str = "application/octet-stream") -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", raw_type if raw is not None else "application/json")
        if user is not None:
            req.add_header("Authorization", f"Bearer {self.tokens[user]}")
        try:
            with self.opener.open(req, timeout=30) as resp:
                status, content = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, content = err.code, err.read()
        except TimeoutError:
            return 0, {"errcode": "(no answer in 30 s)"}
        try:
            return status, json.loads(content)
        except ValueError:
            return status, None

    def must(self, method: str, path: str, body: Any = None, user: str | None = None) -> Any:
        status, answer = self.call(method, path, body, user)
        if status != 200:
            raise SystemExit(f"{self.label}: set-up request {method} {path} answered {status} {answer}")
        return answer

    def register(self, name: str) -> None:
        """Shared-secret registration (Synapse's admin API, which pocketserver serves too)."""
        nonce = self.must("GET", "/_synapse/admin/v1/register")["nonce"]
        password = f"pw-{name}"
        mac = hmac.new(self.secret.encode(), b"\x00".join([nonce.encode(), name.encode(), password.encode(),
                                                           b"notadmin"]), hashlib.sha1).hexdigest()
        answer = self.must("POST", "/_synapse/admin/v1/register",
                           {"nonce": nonce, "username": name, "password": password, "admin": False, "mac": mac})
        self.tokens[name], self.ids[name] = answer["access_token"], answer["user_id"]

    def fill(self, text: str, n: int) -> str:
        text = text.replace("$TXN", f"parity{n}")
        for key, value in self.ids.items():
            text = text.replace("{%s}" % key, value)
        return text


def set_up(srv: Server) -> None:
    """The same users and rooms on either server: see ROOM_USERS for who stands where."""
    for name in USERS:
        srv.register(name)
    room = lambda body: srv.must("POST", C + "/createRoom", body, "alice")["room_id"]  # noqa: E731
    srv.ids["pub"] = room({"preset": "public_chat", "room_alias_name": "pub", "name": "Pub"})
    srv.ids["priv"] = room({"preset": "private_chat", "name": "Priv"})
    srv.ids["banr"] = room({"preset": "public_chat"})
    pub, priv, banr = srv.ids["pub"], srv.ids["priv"], srv.ids["banr"]
    srv.must("POST", C + f"/rooms/{priv}/invite", {"user_id": srv.ids["carol"]}, "alice")
    srv.must("POST", C + f"/join/{pub}", {}, "bob")
    srv.must("POST", C + f"/join/{pub}", {}, "dave")
    srv.must("POST", C + f"/rooms/{pub}/leave", {}, "dave")
    srv.must("POST", C + f"/join/{banr}", {}, "bob")
    srv.must("POST", C + f"/rooms/{banr}/ban", {"user_id": srv.ids["bob"], "reason": "x"}, "alice")
    text = lambda body: {"msgtype": "m.text", "body": body}  # noqa: E731
    srv.ids["msg"] = srv.must("PUT", C + f"/rooms/{pub}/send/m.room.message/s1", text("hello"), "alice")["event_id"]
    srv.ids["privmsg"] = srv.must("PUT", C + f"/rooms/{priv}/send/m.room.message/s2", text("x"), "alice")["event_id"]
    srv.must("PUT", C + f"/rooms/{pub}/send/m.room.message/s3", text("bob"), "bob")
    # A thread, a reaction and an edit in a room of their own, for relations and bundled aggregations.
    srv.ids["rel"] = room({"preset": "public_chat"})
    rel = srv.ids["rel"]
    srv.must("POST", C + f"/join/{rel}", {}, "bob")
    root = srv.must("PUT", C + f"/rooms/{rel}/send/m.room.message/r1", text("root"), "alice")["event_id"]
    srv.ids["root"] = root
    srv.must("PUT", C + f"/rooms/{rel}/send/m.room.message/r2", {
        **text("in thread"), "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                              "m.in_reply_to": {"event_id": root}}}, "bob")
    srv.must("PUT", C + f"/rooms/{rel}/send/m.reaction/r3", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "+1"}}, "bob")
    srv.must("PUT", C + f"/rooms/{rel}/send/m.room.message/r4", {
        **text("* root edited"), "m.new_content": text("root edited"),
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}}, "alice")
    srv.ids.update(unknownroom="!doesnotexist:localhost", remoteroom="!abc:elsewhere.example", badroom="notaroomid",
                   unknownevent="$doesnotexist0000000000000000000000000000000", nobody="@nobody:localhost",
                   remoteuser="@someone:elsewhere.example", baduser="notauser")
    status, answer = srv.call("POST", "/_matrix/media/v3/upload?filename=a.txt", user="alice", raw=b"hello")
    srv.ids["media"] = answer["content_uri"].rsplit("/", 1)[1] if status == 200 else "none"
    # For sync_cases: a room where bob is active, and alice on the device parity_keys.json signs for.
    srv.ids["sy"] = room({"preset": "private_chat", "invite": [srv.ids["bob"]]})
    srv.must("POST", C + f"/join/{srv.ids['sy']}", {}, "bob")
    srv.tokens["alicedev"] = srv.must("POST", C + "/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw-alice",
        "device_id": KEYS["device_id"]})["access_token"]
    for name, user, device in (("alice2", "alice", "PARITY2"), ("erin2", "erin", "ERIN2")):   # for device_cases
        srv.tokens[name] = srv.must("POST", C + "/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": f"pw-{user}",
            "device_id": device, "initial_device_display_name": "second"})["access_token"]


KEYS: dict[str, Any] = json.loads(Path(__file__).with_name("parity_keys.json").read_text(encoding="utf-8"))

ROOMS = ("pub", "priv", "banr", "unknownroom", "badroom", "remoteroom")
# alice is joined to pub, priv and banr (and asks about rooms that do not exist); bob is banned
# from banr; carol is invited to priv and never in pub; dave left pub and was never in priv.
ROOM_USERS = [("alice", r) for r in ROOMS] + [("bob", "banr"), ("carol", "priv"), ("dave", "pub"),
                                              ("carol", "pub"), ("dave", "priv")]


def room_cases() -> Iterator[Case]:
    for user, room in ROOM_USERS:
        r = "{%s}" % room
        ev = "{msg}" if room == "pub" else "{privmsg}" if room == "priv" else "{unknownevent}"
        me = "{%s}" % user
        outside = "#outside" if room in ("unknownroom", "badroom", "remoteroom") else ""
        yield Case(user, "GET", C + f"/rooms/{r}/messages?dir=b&limit=2")
        yield Case(user, "GET", C + f"/rooms/{r}/state")
        yield Case(user, "GET", C + f"/rooms/{r}/state/m.room.name/")
        yield Case(user, "GET", C + f"/rooms/{r}/members")
        yield Case(user, "GET", C + f"/rooms/{r}/members?membership=join")
        yield Case(user, "GET", C + f"/rooms/{r}/joined_members")
        yield Case(user, "GET", C + f"/rooms/{r}/event/{ev}")
        yield Case(user, "GET", C + f"/rooms/{r}/event/{{unknownevent}}")
        yield Case(user, "GET", C + f"/rooms/{r}/context/{ev}")
        yield Case(user, "PUT", C + f"/rooms/{r}/send/m.room.message/$TXN", {"msgtype": "m.text", "body": "x"})
        yield Case(user, "PUT", C + f"/rooms/{r}/state/m.room.topic", {"topic": "t"})
        yield Case(user, "PUT", C + f"/rooms/{r}/typing/{me}", {"typing": True, "timeout": 1000})
        yield Case(user, "POST", C + f"/rooms/{r}/receipt/m.read/{ev}", {})
        yield Case(user, "POST", C + f"/rooms/{r}/read_markers", {"m.fully_read": ev})
        yield Case(user, "POST", C + f"/rooms/{r}/invite", {"user_id": "{nobody}"}, outside)
        yield Case(user, "POST", C + f"/rooms/{r}/kick", {"user_id": "{erin}"}, outside)
        yield Case(user, "POST", C + f"/rooms/{r}/unban", {"user_id": "{erin}"}, outside)
        yield Case(user, "GET", V1 + f"/rooms/{r}/relations/{ev}")
        yield Case(user, "GET", V1 + f"/rooms/{r}/threads")
        yield Case(user, "GET", V1 + f"/rooms/{r}/timestamp_to_event?ts=1&dir=f")
        yield Case(user, "GET", V1 + f"/rooms/{r}/hierarchy")
        yield Case(user, "GET", C + f"/rooms/{r}/aliases")
        yield Case(user, "PUT", C + f"/rooms/{r}/redact/{ev}/$TXN", {})
        yield Case(user, "PUT", C + f"/user/{me}/rooms/{r}/account_data/x.y", {"a": 1})
        yield Case(user, "GET", C + f"/user/{me}/rooms/{r}/account_data/x.y")
        yield Case(user, "PUT", C + f"/user/{me}/rooms/{r}/tags/u.x", {})
        yield Case(user, "GET", C + f"/user/{me}/rooms/{r}/tags")
        yield Case(user, "POST", C + f"/rooms/{r}/report/{ev}", {"reason": "r"})
        yield Case(user, "GET", C + f"/directory/list/room/{r}")
        yield Case(user, "POST", C + f"/rooms/{r}/forget", {})


def other_cases() -> Iterator[Case]:
    a = "alice"
    for target in ("bob", "nobody", "remoteuser", "baduser"):
        t = "{%s}" % target
        yield Case(a, "GET", C + f"/profile/{t}")
        yield Case(a, "GET", C + f"/profile/{t}/displayname")
        yield Case(a, "PUT", C + f"/profile/{t}/displayname", {"displayname": "x"})
        yield Case(a, "GET", C + f"/presence/{t}/status")
        yield Case(a, "PUT", C + f"/presence/{t}/status", {"presence": "online"})
        yield Case(a, "GET", C + f"/user/{t}/account_data/x.y")
        yield Case(a, "PUT", C + f"/user/{t}/account_data/x.y", {})
        yield Case(a, "GET", C + f"/user/{t}/filter/0")
        yield Case(a, "POST", C + f"/user/{t}/filter", {})
        yield Case(a, "POST", C + "/keys/query", {"device_keys": {t: []}})
        yield Case(a, "PUT", C + "/sendToDevice/m.test/$TXN", {"messages": {t: {"*": {"a": 1}}}})
        yield Case(a, "POST", C + "/createRoom", {"invite": [t]}, "#invite-" + target)
        yield Case(a, "GET", V1 + f"/mutual_rooms?user_id={t}")
    strict = [("POST", C + "/createRoom", {"visibility": "bogus"}), ("POST", C + "/createRoom", {"is_direct": "yes"}),
              ("POST", C + "/user/{alice}/filter", {"event_fields": ["a.b"], "presence": {"limit": -1}}),
              ("GET", C + "/rooms/{pub}/members?membership=bogus", None),
              ("PUT", C + "/rooms/{pub}/typing/{alice}", {"typing": "yes"}),
              ("POST", C + "/publicRooms", {"limit": -1}), ("POST", C + "/keys/claim", {})]
    for method, path, body in strict:
        yield Case(a, method, path, body, strict=True)
    plain: list[tuple[str | None, str, str, Any]] = [
        (a, "GET", C + "/directory/room/%23pub:localhost", None),
        (a, "GET", C + "/directory/room/%23nope:localhost", None),
        (a, "GET", C + "/directory/room/nope", None),
        (a, "PUT", C + "/directory/room/%23pub:localhost", {"room_id": "{pub}"}),
        (a, "PUT", C + "/directory/room/%23x:elsewhere.example", {"room_id": "{pub}"}),
        (a, "DELETE", C + "/directory/room/%23nope:localhost", None),
        ("bob", "DELETE", C + "/directory/room/%23pub:localhost", None),
        (a, "GET", C + "/devices/NOPE", None), (a, "DELETE", C + "/devices/NOPE", {}),
        (a, "PUT", C + "/devices/NOPE", {"display_name": "x"}),
        (a, "GET", C + "/user/{alice}/filter/999", None), (a, "GET", C + "/user/{alice}/filter/abc", None),
        (a, "POST", C + "/user/{alice}/filter", {"room": {"timeline": {"limit": "x"}}}),
        (a, "POST", C + "/user/{alice}/filter", {"room": {"rooms": ["garbage"]}}),
        (a, "POST", C + "/user/{alice}/filter", {"room": {"timeline": {"senders": ["{baduser}"]}}}),
        (a, "GET", C + "/sync?timeout=0&filter=" + urllib.parse.quote('{"room":{"not_rooms":["garbage"]}}'), None),
        (a, "GET", C + "/sync?filter=999", None), (a, "GET", C + "/sync?filter=%7Bbad", None),
        (a, "GET", C + "/sync?since=garbage&timeout=0", None), (a, "GET", C + "/sync?timeout=abc", None),
        (a, "GET", C + "/sync?set_presence=weird&timeout=0", None),
        (a, "POST", C + "/createRoom", {"room_version": "999"}), (a, "POST", C + "/createRoom", {"preset": "bogus"}),
        (a, "POST", C + "/createRoom", {"room_alias_name": "pub"}),
        (a, "POST", C + "/createRoom", {"room_alias_name": "a:b"}),
        (a, "POST", C + "/createRoom", {"invite": "notalist"}),
        (a, "POST", C + "/createRoom", {"power_level_content_override": {"users": "x"}}),
        (a, "POST", C + "/createRoom", {"creation_content": {"m.federate": "x"}}),
        (a, "POST", C + "/createRoom", {"name": 5}), (a, "POST", C + "/createRoom", {"topic": 5}),
        (a, "PUT", C + "/rooms/{pub}/send/m.room.message/$TXN", [1, 2]),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.power_levels", {"users": {"{alice}": "x"}}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.power_levels", {"users": {"{alice}": 1}}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.member/{bob}", {"membership": "join"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.member/{nobody}", {"membership": "invite"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.create", {"creator": "x"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.canonical_alias", {"alias": "#nope:localhost"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.canonical_alias", {"alias": "bad"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.join_rules", {"join_rule": "bogus"}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.name", {"name": 5}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.topic", {"topic": 5}),
        (a, "PUT", C + "/rooms/{pub}/state/m.room.server_acl", {"allow": "x"}),
        ("bob", "PUT", C + "/rooms/{pub}/state/m.room.name", {"name": "bob's"}),
        ("bob", "POST", C + "/rooms/{pub}/kick", {"user_id": "{alice}"}),
        ("bob", "POST", C + "/rooms/{pub}/ban", {"user_id": "{alice}"}),
        ("bob", "POST", C + "/rooms/{pub}/redact/{msg}/$TXN", {}),
        ("bob", "POST", C + "/rooms/{pub}/upgrade", {"new_version": "11"}),
        (a, "POST", C + "/rooms/{pub}/invite", {"user_id": "{bob}"}),
        (a, "POST", C + "/rooms/{pub}/invite", {"user_id": "{baduser}"}),
        (a, "POST", C + "/rooms/{pub}/invite", {"user_id": "{remoteuser}"}),
        (a, "POST", C + "/rooms/{pub}/invite", {}), (a, "POST", C + "/rooms/{pub}/ban", {}),
        (a, "POST", C + "/rooms/{pub}/kick", {"user_id": "{nobody}"}),
        (a, "POST", C + "/rooms/{pub}/unban", {"user_id": "{bob}"}),
        (a, "GET", C + "/rooms/{pub}/messages?dir=x", None),
        (a, "GET", C + "/rooms/{pub}/messages?dir=b&limit=abc", None),
        (a, "GET", C + "/rooms/{pub}/messages?dir=b&from=garbage", None),
        (a, "GET", C + "/rooms/{pub}/messages?dir=b&filter=%7Bbad", None),
        (a, "GET", C + "/rooms/{pub}/context/{msg}?limit=abc", None),
        (a, "GET", C + "/rooms/{pub}/state/m.room.member/{nobody}", None),
        (a, "GET", C + "/rooms/{pub}/members?at=garbage", None),
        (a, "GET", V1 + "/rooms/{pub}/relations/{msg}?limit=abc", None),
        (a, "GET", V1 + "/rooms/{pub}/relations/{msg}?from=garbage", None),
        (a, "GET", V1 + "/rooms/{pub}/threads?include=bogus", None),
        (a, "GET", V1 + "/rooms/{pub}/timestamp_to_event?ts=abc&dir=f", None),
        (a, "GET", V1 + "/rooms/{pub}/timestamp_to_event?ts=1&dir=x", None),
        (a, "GET", V1 + "/rooms/{pub}/timestamp_to_event?ts=99999999999999&dir=f", None),
        (a, "POST", C + "/rooms/{pub}/receipt/m.bogus/{msg}", {}),
        (a, "POST", C + "/rooms/{pub}/receipt/m.read/{msg}", {"thread_id": 5}),
        (a, "POST", C + "/rooms/{pub}/read_markers", {"m.fully_read": 5}),
        (a, "PUT", C + "/rooms/{pub}/typing/{bob}", {"typing": True}),
        (a, "PUT", C + "/rooms/{pub}/typing/{alice}", {}),
        (a, "PUT", C + "/rooms/{pub}/typing/{alice}", {"typing": True, "timeout": "x"}),
        (a, "GET", C + "/publicRooms?limit=abc", None), (a, "GET", C + "/publicRooms?since=garbage", None),
        (a, "POST", C + "/publicRooms", {"filter": "x"}),
        (a, "POST", C + "/user_directory/search", {}), (a, "POST", C + "/user_directory/search", {"search_term": 5}),
        (a, "POST", C + "/user_directory/search", {"search_term": "b", "limit": "x"}),
        (a, "GET", C + "/pushrules/global/override/nope", None), (a, "GET", C + "/pushrules/bogus/override/nope", None),
        (a, "GET", C + "/pushrules/global/bogus/nope", None),
        (a, "PUT", C + "/pushrules/global/override/.m.rule.nope", {"actions": []}),
        (a, "PUT", C + "/pushrules/global/room/{pub}", {"actions": ["bogus"]}),
        (a, "PUT", C + "/pushrules/global/override/x?before=nope", {"actions": [], "conditions": []}),
        (a, "DELETE", C + "/pushrules/global/override/nope", None),
        (a, "DELETE", C + "/pushrules/global/override/.m.rule.master", None),
        (a, "PUT", C + "/pushrules/global/override/.m.rule.master/enabled", {"enabled": "x"}),
        (a, "PUT", C + "/pushrules/global/override/nope/enabled", {"enabled": True}),
        (a, "PUT", C + "/pushrules/global/override/.m.rule.master/actions", {"actions": "x"}),
        (a, "GET", C + "/notifications?limit=abc", None), (a, "GET", C + "/notifications?from=garbage", None),
        (a, "POST", C + "/pushers/set", {}),
        (a, "POST", C + "/keys/upload", {"one_time_keys": "x"}),
        (a, "POST", C + "/keys/claim", {"one_time_keys": {"{bob}": {"NOPE": "signed_curve25519"}}}),
        (a, "POST", C + "/keys/query", {}), (a, "GET", C + "/keys/changes?from=a&to=b", None),
        (a, "POST", C + "/keys/signatures/upload", {"x": 1}),
        (a, "GET", C + "/room_keys/version", None), (a, "GET", C + "/room_keys/version/5", None),
        (a, "POST", C + "/room_keys/version", {"algorithm": "bogus", "auth_data": {}}),
        (a, "PUT", C + "/sendToDevice/m.test/$TXN", {}), (a, "PUT", C + "/sendToDevice/m.test/$TXN", {"messages": "x"}),
        (a, "GET", V1 + "/media/download/localhost/nope", None),
        (a, "GET", V1 + "/media/download/localhost/{media}", None),
        (a, "GET", V1 + "/media/download/elsewhere.example/abc", None),
        (a, "GET", V1 + "/media/thumbnail/localhost/{media}?width=abc&height=10", None),
        (a, "GET", V1 + "/media/thumbnail/localhost/{media}", None),
        (a, "GET", V1 + "/media/preview_url", None), (a, "GET", V1 + "/media/config", None),
        (None, "GET", V1 + "/media/download/localhost/{media}", None),
        (a, "POST", C + "/account/password", {}), (a, "POST", C + "/account/deactivate", {"erase": "x"}),
        (a, "GET", C + "/account/3pid", None), (a, "POST", C + "/account/3pid/add", {}),
        (a, "POST", C + "/account/3pid/email/requestToken", {"email": "a@b.c", "client_secret": "s",
                                                             "send_attempt": 1}),
        (None, "POST", C + "/register/email/requestToken", {"email": "a@b.c", "client_secret": "s", "send_attempt": 1}),
        (None, "GET", C + "/register/available?username=alice", None),
        (None, "POST", C + "/login", {}),
        (None, "POST", C + "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                                     "password": "wrong"}),
        (None, "POST", C + "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "nobody"},
                                     "password": "wrong"}),
        (None, "POST", C + "/login", {"type": "m.login.password", "user": "alice"}),
        (None, "POST", C + "/refresh", {"refresh_token": "nope"}), (None, "POST", C + "/refresh", {}),
        (None, "GET", C + "/sync", None), (None, "GET", C + "/capabilities", None),
        (None, "GET", C + "/profile/{bob}", None), (None, "GET", C + "/publicRooms", None),
        (None, "POST", C + "/register?kind=guest", {}),
        (None, "GET", "/_matrix/client/unstable/nope", None), (None, "GET", C + "/nope", None),
        (a, "POST", C + "/nope", {}),
        (a, "GET", C + "/voip/turnServer", None), (a, "GET", C + "/thirdparty/protocols", None),
        (a, "POST", C + "/user/{alice}/openid/request_token", {}),
        (a, "POST", C + "/user/{bob}/openid/request_token", {}),
        (None, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope", None),
        (a, "POST", C + "/join/%23nope:localhost", {}), (a, "POST", C + "/join/%23nope:elsewhere.example", {}),
        (a, "POST", C + "/join/garbage", {}), (a, "POST", C + "/knock/{pub}", {}),
        ("carol", "POST", C + "/knock/{priv}", {}), ("dave", "POST", C + "/knock/{priv}", {}),
        ("bob", "POST", C + "/join/{banr}", {}), ("bob", "POST", C + "/knock/{banr}", {}),
        ("dave", "POST", C + "/join/{priv}", {}),
        (a, "POST", C + "/rooms/{pub}/upgrade", {"new_version": "999"}), (a, "POST", C + "/rooms/{pub}/upgrade", {}),
        (a, "GET", V1 + "/room_summary/{pub}", None), (a, "GET", V1 + "/room_summary/{unknownroom}", None),
        (a, "GET", C + "/admin/whois/{bob}", None), (a, "GET", C + "/admin/whois/{alice}", None),
        (a, "GET", V1 + "/admin/lock/{bob}", None), (a, "GET", V1 + "/admin/suspend/{bob}", None),
        (None, "GET", C + "/login", None), (a, "GET", V1 + "/login/get_token", None),
        (None, "GET", V1 + "/auth_metadata", None), (None, "GET", "/.well-known/matrix/client", None),
        (a, "GET", C + "/events", None), (a, "GET", C + "/initialSync", None), (a, "GET", C + "/events/{msg}", None),
        # 200s whose top-level keys are compared too
        (a, "GET", C + "/capabilities", None), (a, "GET", C + "/devices", None),
        (a, "GET", C + "/account/whoami", None),
        (a, "GET", C + "/profile/{alice}", None), (a, "GET", C + "/rooms/{pub}/event/{msg}", None),
        (a, "GET", C + "/rooms/{pub}/context/{msg}?limit=2", None),
        (a, "GET", C + "/rooms/{pub}/messages?dir=f&limit=3", None),
        (a, "GET", V1 + "/rooms/{pub}/relations/{msg}", None), (a, "GET", V1 + "/rooms/{pub}/threads", None),
        (a, "GET", V1 + "/rooms/{pub}/hierarchy", None), (a, "GET", C + "/pushers", None),
        (a, "GET", C + "/joined_rooms", None), (a, "POST", C + "/user_directory/search", {"search_term": "bob"}),
        (a, "GET", C + "/publicRooms", None), (a, "GET", C + "/rooms/{pub}/joined_members", None),
        (a, "GET", C + "/sync?timeout=0", None),
        (a, "GET", C + "/sync?timeout=0&filter=" + urllib.parse.quote('{"room":{"state":{"lazy_load_members":true}}}'),
         None),
        (a, "GET", C + "/sync?timeout=0&use_state_after=true", None),
        (a, "POST", SLIDING, {"lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 5,
                                                "required_state": [["*", "*"]]}}, "timeout": 0}),
        (a, "POST", SLIDING, {"lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 1,
                                                "required_state": [["m.room.member", "$LAZY"], ["m.room.name", ""]]}},
                              "room_subscriptions": {"{pub}": {"timeline_limit": 3, "required_state": [["*", "*"]]}},
                              "extensions": {e: {"enabled": True} for e in ("e2ee", "to_device", "account_data",
                                                                            "receipts", "typing")},
                              "timeout": 0}),
        (a, "GET", C + "/rooms/{rel}/event/{root}", None),
        (a, "GET", C + "/rooms/{rel}/messages?dir=b&limit=10", None),
        (a, "GET", C + "/rooms/{rel}/context/{root}?limit=4", None),
        (a, "GET", V1 + "/rooms/{rel}/relations/{root}", None),
        (a, "GET", V1 + "/rooms/{rel}/relations/{root}/m.thread", None),
        (a, "GET", V1 + "/rooms/{rel}/relations/{root}/m.annotation/m.reaction", None),
        (a, "GET", V1 + "/rooms/{rel}/threads", None),
        (a, "GET", V1 + "/rooms/{rel}/threads?include=participated", None),
        (a, "POST", C + "/rooms/{rel}/receipt/m.read/{root}", {"thread_id": "main"}),
        (a, "POST", C + "/rooms/{rel}/receipt/m.read/{root}", {"thread_id": "{root}"}),
        (a, "POST", C + "/search", {"search_categories": {"room_events": {"search_term": "root"}}}),
        (a, "POST", C + "/search", {"search_categories": {"room_events": {
            "search_term": "root", "order_by": "recent", "event_context": {"before_limit": 1},
            "groupings": {"group_by": [{"key": "room_id"}]}}}}),
        (a, "POST", C + "/search", {"search_categories": {}}),
        (a, "POST", C + "/search", {"search_categories": {"room_events": {}}}),
        (a, "POST", C + "/search?next_batch=garbage", {"search_categories": {"room_events": {"search_term": "x"}}}),
        (a, "PUT", C + "/pushrules/global/room/{rel}", {"actions": ["dont_notify"]}),
        (a, "GET", C + "/pushrules/global/room/{rel}", None),
        (a, "PUT", C + "/pushrules/global/override/my.rule?before=.m.rule.master",
         {"actions": ["notify"], "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "x"}]}),
        (a, "PUT", C + "/pushrules/global/override/my.rule?after=.m.rule.suppress_notices",
         {"actions": ["notify"], "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "x"}]}),
        (a, "GET", C + "/pushrules/global/override/my.rule", None),
        (a, "PUT", C + "/pushrules/global/override/my.rule/enabled", {"enabled": False}),
        (a, "GET", C + "/pushrules/global/override/my.rule/enabled", None),
        (a, "DELETE", C + "/pushrules/global/override/my.rule", None),
        (a, "PUT", C + "/user/{alice}/account_data/m.direct", {"{bob}": ["{rel}"]}),
        (a, "GET", C + "/user/{alice}/account_data/m.direct", None),
        (a, "GET", C + "/user/{alice}/account_data/nope.nope", None),
        (a, "PUT", C + "/user/{alice}/account_data/m.fully_read", {}),
        (a, "PUT", C + "/user/{alice}/account_data/m.push_rules", {}),
        (a, "POST", C + "/user/{alice}/filter", {"room": {"timeline": {"limit": 5}}}),
        (a, "GET", C + "/user/{alice}/filter/0", None),
        (a, "PUT", C + "/presence/{alice}/status", {"presence": "unavailable", "status_msg": "away"}),
        (a, "GET", C + "/presence/{alice}/status", None),
        (a, "PUT", C + "/presence/{alice}/status", {"presence": "bogus"}),
        (a, "PUT", C + "/profile/{alice}/displayname", {"displayname": "Alice A."}),
        (a, "GET", C + "/rooms/{rel}/state/m.room.member/{alice}", None),
        (a, "PUT", C + "/profile/{alice}/m.tz", {"m.tz": "Europe/London"}),
        (a, "GET", C + "/profile/{alice}", None),
        (a, "DELETE", C + "/profile/{alice}/m.tz", None),
        (a, "POST", C + "/rooms/{rel}/upgrade", {"new_version": "11"}),
        (a, "GET", C + "/rooms/{rel}/state/m.room.tombstone/", None),
        ("bob", "GET", V1 + "/rooms/{rel}/hierarchy", None),
        ("dave", "POST", C + "/rooms/{pub}/kick", {"user_id": "{dave}"}),
        (a, "POST", C + "/rooms/{pub}/kick", {"user_id": "{alice}"}),     # last: alice leaves pub
    ]
    for user, method, path, body in plain:
        yield Case(user, method, path, body)
    yield Case(a, "POST", C + "/createRoom", {"initial_state": [{"type": "m.room.topic"}]}, "#initial-state-no-content")


def sync_cases() -> Iterator[Case]:
    """E2EE keys, then what a second device of alice's sees in incremental /sync and sliding sync
    after others act: typing, receipts, account data, tags, a profile change, presence, to-device,
    an invite to a DM, a redaction, cross-signing."""
    a, b = "alicedev", "bob"
    text = {"msgtype": "m.text", "body": "sync"}
    lists = {"all": {"ranges": [[0, 20]], "timeline_limit": 5, "required_state": [["*", "*"]]}}
    extensions = {e: {"enabled": True} for e in ("e2ee", "to_device", "account_data", "receipts", "typing")}
    lazy = urllib.parse.quote('{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":5}}}')
    yield Case(a, "POST", C + "/keys/upload", {"device_keys": KEYS["device_keys"], "one_time_keys": KEYS["one_time_keys"],
                                               "fallback_keys": KEYS["fallback_keys"]})
    yield Case(a, "GET", C + "/sync?timeout=0", save="since")
    yield Case(a, "POST", SLIDING, {"lists": lists, "extensions": extensions, "timeout": 0}, save="pos")
    # The first cross-signing upload needs no UIA; then the self-signing key signs the device.
    yield Case(a, "POST", C + "/keys/device_signing/upload", {k: KEYS[k] for k in (
        "master_key", "self_signing_key", "user_signing_key")})
    yield Case(a, "POST", C + "/keys/signatures/upload",
               {"{alice}": {KEYS["device_id"]: KEYS["device_signed_by_self_signing_key"]}})
    yield Case(a, "POST", C + "/keys/query", {"device_keys": {"{alice}": []}})
    yield Case(b, "POST", C + "/keys/query", {"device_keys": {"{alice}": [KEYS["device_id"]]}})
    # Bob verifies alice: his user-signing key signs her master key. Only he sees that signature.
    yield Case(b, "POST", C + "/keys/device_signing/upload", {"master_key": KEYS["bob_master_key"],
                                                             "self_signing_key": KEYS["bob_self_signing_key"],
                                                             "user_signing_key": KEYS["bob_user_signing_key"]})
    [(master_id, master_public)] = KEYS["master_key"]["keys"].items()
    yield Case(b, "POST", C + "/keys/signatures/upload",
               {"{alice}": {master_public: KEYS["alice_master_signed_by_bob"]}})
    yield Case(b, "POST", C + "/keys/query", {"device_keys": {"{alice}": [], "{bob}": []}})
    yield Case(a, "POST", C + "/keys/query", {"device_keys": {"{alice}": [], "{bob}": []}})
    yield Case("erin", "POST", C + "/keys/query", {"device_keys": {"{alice}": [], "{bob}": []}})
    for _ in range(4):   # two one-time keys, then the fallback key twice
        yield Case(b, "POST", C + "/keys/claim", {"one_time_keys": {"{alice}": {KEYS["device_id"]: "signed_curve25519"}}})
    yield Case(b, "PUT", C + "/sendToDevice/m.room.encrypted/$TXN", {"messages": {"{alice}": {KEYS["device_id"]: {
        "algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "x", "ciphertext": {}}}}})
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.room.message/$TXN", text, save="bobmsg")
    yield Case(b, "POST", C + "/rooms/{sy}/receipt/m.read/{bobmsg}", {})
    yield Case(b, "PUT", C + "/rooms/{sy}/typing/{bob}", {"typing": True, "timeout": 30000})
    yield Case(a, "PUT", C + "/user/{alice}/rooms/{sy}/account_data/x.y", {"a": 1})
    yield Case(a, "PUT", C + "/user/{alice}/account_data/x.z", {"a": 1})
    yield Case(a, "PUT", C + "/user/{alice}/rooms/{sy}/tags/u.work", {"order": 0.5})
    yield Case(b, "PUT", C + "/profile/{bob}/displayname", {"displayname": "Bob B."})
    yield Case(b, "PUT", C + "/presence/{bob}/status", {"presence": "online", "status_msg": "here"})
    yield Case("erin", "POST", C + "/createRoom", {"invite": ["{alice}"], "is_direct": True, "name": "DM"}, save="dm")
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.room.message/$TXN", text, save="bobmsg2")
    yield Case(b, "PUT", C + "/rooms/{sy}/redact/{bobmsg2}/$TXN", {})
    yield Case(a, "GET", C + "/sync?since={since}&timeout=0", save="since2")
    yield Case(a, "GET", C + "/sync?since={since}&timeout=0&filter=" + lazy)
    yield Case(a, "POST", SLIDING + "?pos={pos}", {"lists": lists, "extensions": extensions, "timeout": 0})
    yield Case(a, "GET", C + "/keys/changes?from={since}&to={since2}")
    yield Case(a, "POST", C + "/join/{dm}", {})
    yield Case(a, "GET", C + "/sync?since={since2}&timeout=0", save="since3")


def flow_cases() -> Iterator[Case]:
    """Threads, mentions and unread counts; relations, threads and lazy-loaded members in
    /messages and /context; a space and its hierarchy; a knock and its acceptance."""
    a, b = "alicedev", "bob"
    text = lambda body, **extra: {"msgtype": "m.text", "body": body, **extra}  # noqa: E731
    threads = urllib.parse.quote('{"room":{"timeline":{"unread_thread_notifications":true}}}')
    lazy = urllib.parse.quote('{"lazy_load_members":true}')
    yield Case(b, "GET", C + "/sync?timeout=0", save="bobsince")
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.room.message/$TXN", text("thread root"), save="troot")
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.room.message/$TXN", text(
        "in the thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": "{troot}", "is_falling_back": True,
                                             "m.in_reply_to": {"event_id": "{troot}"}}}), save="treply")
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.room.message/$TXN", text(
        "alice, look", **{"m.mentions": {"user_ids": ["{alice}"]}}), save="mention")
    yield Case(b, "PUT", C + "/rooms/{sy}/send/m.reaction/$TXN", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": "{treply}", "key": "👍"}})
    yield Case(a, "GET", C + "/sync?since={since3}&timeout=0&filter=" + threads, save="since4")
    yield Case(a, "GET", C + "/notifications")
    yield Case(a, "GET", C + "/notifications?only=highlight")
    yield Case(a, "GET", C + "/notifications?limit=1")
    yield Case(a, "GET", C + "/rooms/{sy}/event/{troot}")
    yield Case(a, "GET", V1 + "/rooms/{sy}/relations/{troot}?recurse=true")
    yield Case(a, "GET", V1 + "/rooms/{sy}/relations/{troot}/m.thread?limit=1")
    yield Case(a, "GET", V1 + "/rooms/{sy}/threads")
    yield Case(a, "GET", C + "/rooms/{sy}/messages?dir=b&limit=3&filter=" + lazy)
    yield Case(a, "GET", C + "/rooms/{sy}/messages?dir=f&limit=3")
    yield Case(a, "GET", C + "/rooms/{sy}/context/{treply}?limit=2&filter=" + lazy)
    yield Case(a, "POST", C + "/rooms/{sy}/receipt/m.read/{treply}", {"thread_id": "{troot}"})
    yield Case(a, "POST", C + "/rooms/{sy}/receipt/m.read.private/{mention}", {})
    yield Case(a, "GET", C + "/sync?since={since4}&timeout=0&filter=" + threads)
    # A space with the room as its child.
    yield Case("alice", "POST", C + "/createRoom", {"creation_content": {"type": "m.space"}, "name": "Space",
                                                    "preset": "public_chat"}, save="space")
    yield Case("alice", "PUT", C + "/rooms/{space}/state/m.space.child/{sy}", {"via": ["localhost"], "order": "a"})
    yield Case("alice", "PUT", C + "/rooms/{sy}/state/m.space.parent/{space}", {"via": ["localhost"], "canonical": True})
    yield Case("alice", "GET", V1 + "/rooms/{space}/hierarchy")
    yield Case("alice", "GET", V1 + "/rooms/{space}/hierarchy?max_depth=0")
    yield Case("alice", "GET", V1 + "/rooms/{space}/hierarchy?limit=1")
    yield Case("erin", "GET", V1 + "/rooms/{space}/hierarchy")
    yield Case("alice", "GET", V1 + "/room_summary/{space}")
    yield Case("erin", "GET", V1 + "/room_summary/{sy}")
    # A knock, seen by the room and the knocker, then accepted with an invite.
    yield Case("erin", "POST", C + "/createRoom", {"initial_state": [{"type": "m.room.join_rules", "state_key": "",
                                                                      "content": {"join_rule": "knock"}}],
                                                   "name": "Knock here"}, save="kr")
    yield Case("erin", "GET", C + "/sync?timeout=0", save="erinsince")
    yield Case(b, "POST", C + "/knock/{kr}", {"reason": "let me in"})
    yield Case(b, "GET", C + "/sync?since={bobsince}&timeout=0", save="bobsince2")
    yield Case("erin", "GET", C + "/sync?since={erinsince}&timeout=0")
    yield Case("erin", "POST", C + "/rooms/{kr}/invite", {"user_id": "{bob}"})
    yield Case(b, "GET", C + "/sync?since={bobsince2}&timeout=0")
    yield Case(b, "GET", V1 + "/room_summary/{kr}")
    yield from backup_cases()
    yield from device_cases()
    yield from later_cases()
    yield from sliding_cases()
    yield from membership_cases()
    yield from misc_cases()
    yield from push_cases()
    yield from media_cases()
    yield from paging_cases()


def sliding_cases() -> Iterator[Case]:
    """Sliding sync as Element X drives it: filtered lists (DMs, invites, spaces, favourites), a
    subscription whose timeline limit grows, extensions scoped to lists and rooms."""
    a, b = "alicedev", "bob"
    state = [["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.room.name", ""], ["m.room.create", ""],
             ["m.room.encryption", ""], ["m.room.avatar", ""], ["m.room.canonical_alias", ""]]
    lists = {name: {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": state, "filters": filters}
             for name, filters in (("dms", {"is_dm": True}), ("invites", {"is_invite": True}),
                                   ("spaces", {"room_types": ["m.space"]}), ("favs", {"tags": ["m.favourite"]}),
                                   ("rooms", {"not_room_types": ["m.space"], "is_invite": False}))}
    extensions = {"to_device": {"enabled": True}, "e2ee": {"enabled": True},
                  "account_data": {"enabled": True, "lists": ["dms"], "rooms": ["{newroom}"]},
                  "receipts": {"enabled": True, "rooms": ["{newroom}"]}, "typing": {"enabled": True, "lists": ["rooms"]}}
    body = {"conn_id": "ex", "lists": lists, "extensions": extensions, "timeout": 0}
    yield Case(a, "POST", SLIDING, body, save="expos")
    yield Case(b, "PUT", C + "/rooms/{newroom}/typing/{bob}", {"typing": True, "timeout": 30000})
    yield Case("alice", "PUT", C + "/rooms/{newroom}/send/m.room.message/$TXN", {"msgtype": "m.text", "body": "new"},
               save="newmsg")
    yield Case("alice", "POST", C + "/rooms/{newroom}/receipt/m.read/{newmsg}", {})
    yield Case("alice", "PUT", C + "/user/{alice}/rooms/{newroom}/tags/m.favourite", {"order": 0.5})
    yield Case(a, "POST", SLIDING + "?pos={expos}", body, save="expos2")
    grown = {**body, "room_subscriptions": {"{newroom}": {"timeline_limit": 10, "required_state": [["*", "*"]]}}}
    yield Case(a, "POST", SLIDING + "?pos={expos2}", grown, save="expos3")
    yield Case(a, "POST", SLIDING + "?pos={expos3}", grown)
    yield Case(a, "POST", SLIDING + "?pos=garbage", body)
    yield Case(a, "POST", SLIDING, {"conn_id": "ex", "lists": {"x": {"ranges": [[5, 1]], "timeline_limit": 1,
                                                                    "required_state": []}}}, strict=True)


def device_cases() -> Iterator[Case]:
    """Devices: renamed, deleted through UIA, logged out; what others' syncs and the tokens say;
    the public room directory paged and searched."""
    a = "alicedev"
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "pw-alice", "session": "{uia}"}
    yield Case("bob", "GET", C + "/sync?timeout=0&filter=%7B%22room%22%3A%7B%22rooms%22%3A%5B%5D%7D%7D",
               save="bobdev")
    yield Case(a, "GET", C + "/devices")
    yield Case(a, "PUT", C + "/devices/PARITY2", {"display_name": "old phone"})
    yield Case(a, "GET", C + "/devices/PARITY2")
    yield Case(a, "DELETE", C + "/devices/PARITY2", {}, save="uia")
    yield Case(a, "DELETE", C + "/devices/PARITY2", {"auth": {**auth, "password": "wrong"}})
    yield Case(a, "DELETE", C + "/devices/PARITY2", {"auth": auth})
    yield Case("alice2", "GET", C + "/account/whoami")
    yield Case(a, "GET", C + "/devices/PARITY2")
    yield Case("erin2", "POST", C + "/logout", {})
    yield Case("erin2", "GET", C + "/account/whoami")
    yield Case("bob", "GET", C + "/sync?since={bobdev}&timeout=0")
    yield Case("bob", "POST", C + "/keys/query", {"device_keys": {"{alice}": []}})
    yield Case("alice", "PUT", C + "/directory/list/room/{space}", {"visibility": "public"})
    yield Case("erin", "PUT", C + "/directory/list/room/{kr}", {"visibility": "public"})
    yield Case("bob", "GET", C + "/publicRooms?limit=1")   # (Synapse lets only admins publish: nothing to page)
    yield Case("bob", "POST", C + "/publicRooms", {"filter": {"generic_search_term": "pub"}, "limit": 5})
    yield Case("bob", "POST", C + "/user_directory/search", {"search_term": "ali", "limit": 1})


def backup_cases() -> Iterator[Case]:
    """Server-side key backup (the auth_data is opaque to servers: neither checks its signatures)."""
    a = "alicedev"
    algorithm = "m.megolm_backup.v1.curve25519-aes-sha2"
    key = lambda count: {"first_message_index": 1, "forwarded_count": count, "is_verified": False,  # noqa: E731
                         "session_data": {"ephemeral": "e", "ciphertext": "c", "mac": "m"}}
    keys = C + "/room_keys/keys"
    yield Case(a, "POST", C + "/room_keys/version", {"algorithm": algorithm, "auth_data": {"public_key": "pk1"}},
               save="backup")
    yield Case(a, "GET", C + "/room_keys/version")
    yield Case(a, "PUT", keys + "/{sy}/sess1?version={backup}", key(1))
    yield Case(a, "PUT", keys + "?version={backup}", {"rooms": {"{sy}": {"sessions": {"sess2": key(0)}}}})
    yield Case(a, "PUT", keys + "/{sy}/sess1?version={backup}", key(5))      # a worse key: kept as it was
    yield Case(a, "GET", keys + "?version={backup}")
    yield Case(a, "GET", keys + "/{sy}?version={backup}")
    yield Case(a, "GET", keys + "/{sy}/sess1?version={backup}")
    yield Case(a, "GET", keys + "/{sy}/nope?version={backup}")
    yield Case(a, "GET", C + "/room_keys/version/{backup}")
    yield Case(a, "PUT", keys + "?version=999", {"rooms": {}})
    yield Case(a, "DELETE", keys + "/{sy}/sess1?version={backup}")
    yield Case(a, "PUT", C + "/room_keys/version/{backup}", {"algorithm": algorithm, "auth_data": {"public_key": "pk2"},
                                                             "version": "{backup}"})
    yield Case(a, "POST", C + "/room_keys/version", {"algorithm": algorithm, "auth_data": {"public_key": "pk3"}},
               save="backup2")
    yield Case(a, "PUT", keys + "/{sy}/sess3?version={backup}", key(0))      # the old version
    yield Case(a, "DELETE", C + "/room_keys/version/{backup}")
    yield Case(a, "GET", C + "/room_keys/version/{backup}")
    yield Case(a, "GET", C + "/room_keys/version")


def membership_cases() -> Iterator[Case]:
    """Invites rejected and rescinded, a knock refused, a ban over an invite, a restricted room
    joined through its space, reactions twice, edits of edits, a redacted edit and a redacted
    state event, an @room mention by someone without the power for it."""
    text = {"msgtype": "m.text", "body": "x"}
    yield Case("erin", "POST", C + "/createRoom", {"preset": "private_chat", "name": "Erin's"}, save="er")
    yield Case("erin", "POST", C + "/rooms/{er}/invite", {"user_id": "{carol}"})
    yield Case("carol", "POST", C + "/rooms/{er}/leave", {})                        # rejects
    yield Case("carol", "POST", C + "/rooms/{er}/leave", {})                        # again
    yield Case("erin", "POST", C + "/rooms/{er}/invite", {"user_id": "{dave}"})
    yield Case("erin", "POST", C + "/rooms/{er}/kick", {"user_id": "{dave}", "reason": "oops"})   # rescinds
    yield Case("dave", "POST", C + "/join/{er}", {})
    yield Case("erin", "POST", C + "/rooms/{er}/invite", {"user_id": "{dave}"})
    yield Case("erin", "POST", C + "/rooms/{er}/ban", {"user_id": "{dave}"})
    yield Case("dave", "POST", C + "/join/{er}", {})
    yield Case("erin", "POST", C + "/rooms/{er}/invite", {"user_id": "{dave}"})
    yield Case("erin", "PUT", C + "/rooms/{er}/state/m.room.join_rules", {"join_rule": "knock"})
    yield Case("carol", "POST", C + "/knock/{er}", {"reason": "please"})
    yield Case("carol", "POST", C + "/knock/{er}", {"reason": "again"})
    yield Case("erin", "POST", C + "/rooms/{er}/kick", {"user_id": "{carol}"})           # refuses the knock
    yield Case("carol", "GET", C + "/rooms/{er}/state")
    # A room restricted to the members of a space.
    yield Case("alice", "POST", C + "/createRoom", {"preset": "public_chat", "name": "Sp2",
                                                    "creation_content": {"type": "m.space"}}, save="sp2")
    yield Case("alice", "POST", C + "/createRoom", {"name": "Restricted", "initial_state": [
        {"type": "m.room.join_rules", "state_key": "",
         "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "{sp2}"}]}}]},
               save="rr")
    yield Case("alice", "PUT", C + "/rooms/{sp2}/state/m.space.child/{rr}", {"via": ["localhost"]})
    yield Case("carol", "POST", C + "/join/{rr}", {})                               # not in the space
    yield Case("carol", "POST", C + "/join/{sp2}", {})
    yield Case("carol", "POST", C + "/join/{rr}", {})
    yield Case("carol", "GET", C + "/rooms/{rr}/state/m.room.member/{carol}")
    yield Case("carol", "GET", V1 + "/rooms/{sp2}/hierarchy")
    # The same checks for member events written as state: an outsider's join claiming a member's
    # authorisation, invites to nobody, a join or knock for someone else.
    yield Case("dave", "PUT", C + "/rooms/{rr}/state/m.room.member/{dave}", {
        "membership": "join", "join_authorised_via_users_server": "{alice}"})
    yield Case("alice", "PUT", C + "/rooms/{rr}/state/m.room.member/{nobody}", {"membership": "invite"})
    yield Case("alice", "PUT", C + "/rooms/{rr}/state/m.room.member/{dave}", {"membership": "join"})
    yield Case("dave", "GET", C + "/rooms/{rr}/messages?dir=b&limit=1")
    # Reactions, edits and redactions in it.
    yield Case("alice", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", text, save="rmsg")
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "{rmsg}", "key": "🎉"}}
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.reaction/$TXN", reaction)
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.reaction/$TXN", reaction)    # the same again
    # A redaction through /send is checked as /redact checks it; a relation names an event of the room.
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.room.redaction/$TXN", {"redacts": "{rmsg}"})
    yield Case("carol", "GET", C + "/rooms/{rr}/event/{rmsg}")
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.reaction/$TXN", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": "$no-such-event", "key": "🎉"}})
    edit = lambda body: {"msgtype": "m.text", "body": f"* {body}", "m.new_content": {"msgtype": "m.text", "body": body},  # noqa: E731
                         "m.relates_to": {"rel_type": "m.replace", "event_id": "{rmsg}"}}
    yield Case("alice", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", edit("first"), save="edit1")
    yield Case("alice", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", edit("second"), save="edit2")
    yield Case("alice", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", {
        **edit("edit of an edit"), "m.relates_to": {"rel_type": "m.replace", "event_id": "{edit1}"}})
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", edit("not mine"))
    yield Case("alice", "GET", C + "/rooms/{rr}/event/{rmsg}")
    yield Case("alice", "PUT", C + "/rooms/{rr}/redact/{edit2}/$TXN", {})
    yield Case("alice", "GET", C + "/rooms/{rr}/event/{rmsg}")
    yield Case("alice", "GET", V1 + "/rooms/{rr}/relations/{rmsg}/m.annotation")
    yield Case("alice", "PUT", C + "/rooms/{rr}/state/m.room.topic", {"topic": "soon gone"}, save="topic")
    yield Case("alice", "PUT", C + "/rooms/{rr}/redact/{topic}/$TXN", {"reason": "no"})
    yield Case("alice", "GET", C + "/rooms/{rr}/state/m.room.topic/")
    yield Case("carol", "PUT", C + "/rooms/{rr}/send/m.room.message/$TXN", {
        "msgtype": "m.text", "body": "@room hello", "m.mentions": {"room": True}})
    yield Case("alice", "GET", C + "/notifications?limit=1")
    yield Case("carol", "POST", C + "/rooms/{rr}/forget", {})
    yield Case("carol", "POST", C + "/rooms/{rr}/leave", {})
    yield Case("carol", "POST", C + "/rooms/{rr}/forget", {})
    yield Case("carol", "GET", C + "/rooms/{rr}/messages?dir=b&limit=2")


def misc_cases() -> Iterator[Case]:
    """Private receipts, aliases, power levels, member lists, search and sync filters; then a
    password change and an account deactivated, as the others see it."""
    def q(text: str) -> str:                # placeholders stay unquoted, to be filled in
        return urllib.parse.quote(text, safe="{}")
    yield Case("carol", "POST", C + "/join/{sp2}", {})
    yield Case("alice", "PUT", C + "/rooms/{sp2}/send/m.room.message/$TXN", {"msgtype": "m.text", "body": "find me"},
               save="spmsg")
    yield Case("carol", "GET", C + "/sync?timeout=0&filter=%7B%22room%22%3A%7B%22rooms%22%3A%5B%5D%7D%7D",
               save="carolsince")
    yield Case("carol", "POST", C + "/rooms/{sp2}/receipt/m.read.private/{spmsg}", {})
    yield Case("alice", "GET", C + "/sync?timeout=0&filter=" + q('{"room":{"rooms":["{sp2}"],"timeline":{"limit":1}}}'))
    yield Case("carol", "GET", C + "/sync?since={carolsince}&timeout=0")
    # Aliases.
    yield Case("alice", "PUT", C + "/directory/room/%23sp2:localhost", {"room_id": "{sp2}"})
    yield Case("alice", "PUT", C + "/directory/room/%23sp2:localhost", {"room_id": "{sp2}"})       # taken
    yield Case("alice", "PUT", C + "/directory/room/%23sp2b:localhost", {"room_id": "{sp2}"})
    yield Case("alice", "PUT", C + "/rooms/{sp2}/state/m.room.canonical_alias",
               {"alias": "#sp2:localhost", "alt_aliases": ["#sp2b:localhost"]})
    yield Case("alice", "GET", C + "/rooms/{sp2}/aliases")
    yield Case("carol", "DELETE", C + "/directory/room/%23sp2b:localhost")                        # not hers
    yield Case("alice", "DELETE", C + "/directory/room/%23sp2b:localhost")
    yield Case("alice", "GET", C + "/rooms/{sp2}/state/m.room.canonical_alias/")
    yield Case("carol", "GET", C + "/directory/room/%23sp2:localhost")
    # Power levels.
    yield Case("alice", "PUT", C + "/rooms/{sp2}/state/m.room.power_levels",
               {"users": {"{alice}": 100, "{carol}": 50}, "users_default": 0, "events_default": 0, "state_default": 50,
                "ban": 50, "kick": 50, "redact": 50, "invite": 0, "events": {"m.room.power_levels": 100}})
    yield Case("carol", "PUT", C + "/rooms/{sp2}/state/m.room.power_levels",
               {"users": {"{alice}": 100, "{carol}": 100}})                                      # above her own
    yield Case("carol", "POST", C + "/rooms/{sp2}/kick", {"user_id": "{alice}"})                  # a higher level
    yield Case("carol", "PUT", C + "/rooms/{sp2}/state/m.room.topic", {"topic": "by carol"})
    # Member lists.
    yield Case("carol", "GET", C + "/rooms/{sp2}/members?not_membership=leave")
    yield Case("carol", "GET", C + "/rooms/{sp2}/members?membership=join&not_membership=join")
    yield Case("carol", "GET", C + "/rooms/{sp2}/members?at={carolsince}")
    yield Case("carol", "GET", C + "/rooms/{sp2}/joined_members")
    # Search.
    yield Case("carol", "POST", C + "/search", {"search_categories": {"room_events": {
        "search_term": "find", "filter": {"rooms": ["{sp2}"], "limit": 1}, "include_state": True,
        "event_context": {"before_limit": 1, "after_limit": 1, "include_profile": True}}}})
    yield Case("carol", "POST", C + "/search", {"search_categories": {"room_events": {
        "search_term": "find", "keys": ["content.body"], "order_by": "rank"}}})
    yield Case("carol", "POST", C + "/search", {"search_categories": {"room_events": {
        "search_term": "find", "keys": ["content.name"]}}})
    # Sync filters.
    for flt in ('{"room":{"timeline":{"types":["m.room.message"],"limit":2}}}',
                '{"room":{"timeline":{"not_types":["m.room.*"]},"state":{"types":["m.room.name"]}}}',
                '{"room":{"not_rooms":["{sp2}"],"ephemeral":{"not_types":["m.receipt"]}}}',
                '{"account_data":{"types":["m.push_rules"]},"presence":{"not_senders":["{alice}"]}}',
                '{"event_fields":["type","content.body","sender"]}', '{"event_format":"federation"}'):
        yield Case("carol", "GET", C + "/sync?timeout=0&filter=" + q(flt))
    # A password change (other devices logged out), then an account deactivated.
    yield Case("dave", "POST", C + "/account/password", {"new_password": "pw-dave2", "logout_devices": True},
               save="uia2")
    yield Case("dave", "POST", C + "/account/password", {"new_password": "pw-dave2", "logout_devices": True,
                                                        "auth": {"type": "m.login.password", "session": "{uia2}",
                                                                 "identifier": {"type": "m.id.user", "user": "dave"},
                                                                 "password": "pw-dave"}})
    yield Case("dave", "GET", C + "/account/whoami")
    yield Case(None, "POST", C + "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user",
                                                                                      "user": "dave"},
                                           "password": "pw-dave"})
    yield Case("carol", "GET", C + "/sync?timeout=0&filter=%7B%22room%22%3A%7B%22rooms%22%3A%5B%22{sp2}%22%5D%7D%7D",
               save="carolsince2")
    yield Case("carol", "POST", C + "/account/deactivate", {}, save="uia3")
    yield Case("carol", "POST", C + "/account/deactivate", {"erase": True, "auth": {
        "type": "m.login.password", "session": "{uia3}", "identifier": {"type": "m.id.user", "user": "carol"},
        "password": "pw-carol"}})
    yield Case("carol", "GET", C + "/account/whoami")
    yield Case("alice", "GET", C + "/profile/{carol}")
    yield Case("alice", "GET", C + "/rooms/{sp2}/state/m.room.member/{carol}")
    yield Case("alice", "GET", C + "/rooms/{sp2}/joined_members")
    yield Case(None, "GET", C + "/register/available?username=carol")


def _png(width: int, height: int) -> bytes:
    """A small RGB PNG, made with the standard library (zlib)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"".join(bytes((x * 7 % 256, y * 5 % 256, 90)) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def media_cases() -> Iterator[Case]:
    """Uploads, thumbnails of several sizes and methods, an upload to an ID created first, media
    config; only statuses and JSON are compared (headers were compared by hand)."""
    a = "alice"
    png = _png(320, 240)
    yield Case(a, "POST", "/_matrix/media/v3/upload?filename=photo.png", raw=png, raw_type="image/png", save="png")
    yield Case(a, "POST", "/_matrix/media/v3/upload", raw=b"", raw_type="text/plain")
    yield Case(a, "POST", "/_matrix/media/v3/upload?filename=bad.png", raw=b"not a png", raw_type="image/png",
               save="badpng")
    for query in ("width=32&height=32", "width=32&height=32&method=crop", "width=640&height=480&method=scale",
                  "width=1&height=1", "width=32", "width=32&height=32&animated=true"):
        yield Case(a, "GET", V1 + f"/media/thumbnail/localhost/{{png}}?{query}")
    for query in ("width=0&height=32", "width=32&height=32&method=bogus"):      # refused here: 400
        yield Case(a, "GET", V1 + f"/media/thumbnail/localhost/{{png}}?{query}", strict=True)
    yield Case(a, "GET", V1 + "/media/thumbnail/localhost/{badpng}?width=32&height=32")
    yield Case(a, "GET", V1 + "/media/download/localhost/{png}/other-name.png")
    yield Case(a, "POST", "/_matrix/media/v1/create", {}, save="created")
    yield Case(a, "GET", V1 + "/media/download/localhost/{created}?timeout_ms=0")
    yield Case("bob", "PUT", "/_matrix/media/v3/upload/localhost/{created}", raw=b"hi", raw_type="text/plain")
    yield Case(a, "PUT", "/_matrix/media/v3/upload/localhost/{created}", raw=b"hi", raw_type="text/plain")
    yield Case(a, "PUT", "/_matrix/media/v3/upload/localhost/{created}", raw=b"again", raw_type="text/plain")
    yield Case(a, "GET", V1 + "/media/download/localhost/{created}")
    yield Case(a, "PUT", "/_matrix/media/v3/upload/localhost/nonexistent", raw=b"x", raw_type="text/plain")


def paging_cases() -> Iterator[Case]:
    """Threads and relations paged, both ways; /messages and /context at the edges."""
    a, b = "alice", "bob"
    yield Case(a, "POST", C + "/createRoom", {"preset": "public_chat"}, save="tr")
    yield Case(b, "POST", C + "/join/{tr}", {})
    for n in range(3):
        yield Case(a, "PUT", C + "/rooms/{tr}/send/m.room.message/$TXN", {"msgtype": "m.text", "body": f"root {n}"},
                   save=f"tr{n}")
        yield Case(b, "PUT", C + "/rooms/{tr}/send/m.room.message/$TXN", {
            "msgtype": "m.text", "body": f"reply {n}", "m.relates_to": {"rel_type": "m.thread", "event_id": f"{{tr{n}}}"}})
    yield Case(b, "PUT", C + "/rooms/{tr}/send/m.room.message/$TXN", {
        "msgtype": "m.text", "body": "reply 0 again", "m.relates_to": {"rel_type": "m.thread", "event_id": "{tr0}"}})
    yield Case(a, "GET", V1 + "/rooms/{tr}/threads?limit=1", save="thr")
    yield Case(a, "GET", V1 + "/rooms/{tr}/threads?limit=1&from={thr}", save="thr2")
    yield Case(a, "GET", V1 + "/rooms/{tr}/threads?limit=5&include=participated")
    yield Case(b, "GET", V1 + "/rooms/{tr}/threads?limit=5&include=participated")
    yield Case(a, "GET", V1 + "/rooms/{tr}/relations/{tr0}?limit=1", save="rel1")
    yield Case(a, "GET", V1 + "/rooms/{tr}/relations/{tr0}?limit=1&from={rel1}")
    yield Case(a, "GET", V1 + "/rooms/{tr}/relations/{tr0}?dir=f&limit=5")
    yield Case(a, "GET", V1 + "/rooms/{tr}/relations/{tr0}/m.thread/m.room.message?dir=f")
    yield Case(a, "GET", C + "/rooms/{tr}/messages?dir=f&limit=2", save="fwd")
    yield Case(a, "GET", C + "/rooms/{tr}/messages?dir=f&limit=2&from={fwd}")
    yield Case(a, "GET", C + "/rooms/{tr}/messages?dir=b&limit=0")
    yield Case(a, "GET", C + "/rooms/{tr}/context/{tr2}?limit=0")
    yield Case(a, "GET", C + "/rooms/{tr}/context/{tr0}?limit=3&filter=" + urllib.parse.quote(
        '{"types":["m.room.message"]}'))


def push_cases() -> Iterator[Case]:
    """What push rules make of messages: a keyword, the display name without m.mentions, a
    member-count condition, a muted sender; unread counts and /notifications after each."""
    a, b = "alice", "bob"
    msg = lambda body, **extra: {"msgtype": "m.text", "body": body, **extra}  # noqa: E731
    yield Case(a, "POST", C + "/createRoom", {"preset": "public_chat", "name": "Pizza"}, save="pr")
    yield Case(b, "POST", C + "/join/{pr}", {})
    yield Case(a, "PUT", C + "/pushrules/global/content/pizza", {"pattern": "pizza", "actions": [
        "notify", {"set_tweak": "highlight"}, {"set_tweak": "sound", "value": "default"}]})
    yield Case(a, "GET", C + "/sync?timeout=0&filter=%7B%22room%22%3A%7B%22rooms%22%3A%5B%22{pr}%22%5D%7D%7D",
               save="prsince")
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("pizza time"))
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("Alice A., are you there?"))
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("Alice A. again", **{"m.mentions": {}}))
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("plain"))
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.notice/$TXN", {"msgtype": "m.notice", "body": "a bot's"})
    yield Case(a, "GET", C + "/sync?since={prsince}&timeout=0", save="prsince2")
    yield Case(a, "GET", C + "/notifications?limit=5")
    yield Case(a, "PUT", C + "/pushrules/global/override/two", {"actions": ["notify", {"set_tweak": "highlight"}],
                                                               "conditions": [{"kind": "room_member_count", "is": "2"},
                                                                              {"kind": "event_match", "key": "type",
                                                                               "pattern": "m.room.message"}]})
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("two of us"))
    yield Case(a, "PUT", C + "/pushrules/global/sender/{bob}", {"actions": []})
    yield Case(b, "PUT", C + "/rooms/{pr}/send/m.room.message/$TXN", msg("muted me"))
    yield Case(a, "GET", C + "/sync?since={prsince2}&timeout=0")
    yield Case(a, "GET", C + "/notifications?limit=3")
    yield Case(a, "GET", C + "/pushrules/global/sender/{bob}")
    yield Case(a, "GET", C + "/pushrules/global/content/")


def later_cases() -> Iterator[Case]:
    """Read markers and an ignored user seen in /sync, filtered /messages, then the room upgraded
    and followed."""
    a, b = "alicedev", "bob"
    # Initial syncs repeated later in the run differ in their query: Synapse answers the same request
    # from a cache for two minutes (SYNC_RESPONSE_CACHE_MS), token and all.
    yield Case(a, "GET", C + "/sync?timeout=0&filter=%7B%7D", save="since5")
    yield Case(a, "POST", C + "/rooms/{sy}/read_markers", {"m.fully_read": "{troot}", "m.read": "{troot}"})
    yield Case(a, "PUT", C + "/user/{alice}/account_data/m.ignored_user_list", {"ignored_users": {"{erin}": {}}})
    yield Case("erin", "PUT", C + "/rooms/{dm}/send/m.room.message/$TXN", {"msgtype": "m.text", "body": "ignored"})
    yield Case(a, "GET", C + "/sync?since={since5}&timeout=0", save="since6")
    yield Case(a, "GET", C + "/rooms/{dm}/messages?dir=b&limit=3")
    yield Case(a, "GET", C + "/rooms/{sy}/messages?dir=b&filter=" + urllib.parse.quote(json.dumps(
        {"types": ["m.room.message"], "not_senders": ["@alice:localhost"], "contains_url": False, "limit": 2})))
    yield Case(a, "GET", C + "/rooms/{sy}/messages?dir=b&filter=" + urllib.parse.quote(json.dumps(
        {"not_types": ["m.room.*"], "limit": 3})))
    yield Case(b, "GET", C + "/sync?timeout=0&filter=%7B%7D", save="bobsince3")
    yield Case("alice", "POST", C + "/rooms/{sy}/upgrade", {"new_version": "11"}, save="newroom")
    yield Case(b, "GET", C + "/sync?since={bobsince3}&timeout=0")
    yield Case(b, "POST", C + "/join/{newroom}", {})
    yield Case(b, "GET", C + "/rooms/{newroom}/state/m.room.create/")
    yield Case(b, "GET", C + "/rooms/{newroom}/state")
    yield Case(b, "GET", C + "/rooms/{sy}/state/m.room.tombstone/")
    yield Case(b, "GET", C + "/rooms/{sy}/state/m.room.power_levels/")
    yield Case(b, "GET", V1 + "/room_summary/{newroom}")
    yield Case(a, "GET", C + "/sync?since={since6}&timeout=0")


def explanation(case: Case) -> str | None:
    """The KNOWN reason that covers `case`, if any."""
    generic = _generic(case.template)
    for (user, method, template), reason in KNOWN.items():
        if template.startswith("#"):
            if template in GROUPS and GROUPS[template](case) and user in (case.user, "*"):
                return reason
            continue
        if user not in (case.user, "*") or method not in (case.method, "*"):
            continue
        path, _, tag = template.partition("#")
        if (path == case.template.split("?")[0] or path == generic.split("?")[0]) and (not tag or f"#{tag}" in case.tag
                                                                                  or case.tag.startswith(f"#{tag}")):
            return reason
    return None


def _generic(template: str) -> str:
    for room in ROOMS:
        template = template.replace("{%s}" % room, "{room}")
    return template


def compare(synapse: Server, other: Server, cases: list[Case], dump: Path | None = None) -> list[dict[str, Any]]:
    """Each case on both servers, in order; the differences. `dump`: a folder to write both
    answers of every request to, as NNN-synapse.json and NNN-other.json."""
    rows = []
    for n, case in enumerate(cases):
        answers = []
        for srv in (synapse, other):
            path = srv.fill(case.template, n)
            body = None if case.body is None else json.loads(srv.fill(json.dumps(case.body), n))
            status, answer = srv.call(case.method, path, body, case.user, case.raw, case.raw_type)
            if case.save and status == 401 and isinstance(answer, dict) and "session" in answer:
                srv.ids[case.save] = answer["session"]          # a UIA session, for the next stage
            elif case.save and status == 200 and isinstance(answer, dict):
                value = next((answer[k] for k in ("next_batch", "pos", "event_id", "room_id", "replacement_room",
                                                  "version", "content_uri", "end") if k in answer), None)
                if isinstance(value, str) and value.startswith("mxc://"):
                    value = value.rsplit("/", 1)[1]            # the media ID
                if value is not None:
                    srv.ids[case.save] = value
            errcode = answer.get("errcode") if isinstance(answer, dict) else None
            error = answer.get("error") if isinstance(answer, dict) else None
            keys = sorted(shape(answer)) if status == 200 and isinstance(answer, dict) else None
            answers.append({"status": status, "errcode": errcode, "error": error, "keys": keys})
            if dump is not None:
                (dump / f"{n:03d}-{srv.label}.json").write_text(json.dumps(
                    {"request": [case.method, path, body], "status": status, "answer": answer}, indent=1))
        s, o = answers
        kind = None
        if (s["status"], s["errcode"]) != (o["status"], o["errcode"]):
            if s["status"] >= 500 and 400 <= o["status"] < 500:
                kind = "synapse-5xx"
            elif s["status"] == o["status"] and s["errcode"] in (None, "M_UNKNOWN") and o["errcode"]:
                kind = "errcode-only"
            else:
                kind = "known" if explanation(case) else "unexplained"
        elif s["keys"] is not None and o["keys"] is not None and s["keys"] != o["keys"]:
            kind = "keys"
        if kind:
            rows.append({"n": n, "kind": kind, "user": case.user, "method": case.method, "path": case.template,
                         "body": case.body, "synapse": s, "other": o, "reason": explanation(case)})
    return rows


def shape(value: Any, prefix: str = "", depth: int = 8) -> set[str]:
    """The key paths of a JSON body ("rooms.join.<id>.timeline.events[].content"), with IDs
    and other data-like keys folded, and unstable (MSC-prefixed) fields left out."""
    paths: set[str] = set()
    if depth == 0:
        return paths
    if isinstance(value, dict):
        for key, item in value.items():
            if "." in key and ("msc" in key or key.startswith(("org.", "io.", "im."))):
                continue
            name = "<id>" if key[:1] in "!@$#" or key.startswith(("mxc:", "ed25519:", "curve25519:")) else key
            if prefix.endswith(("content", "account_data", "device_keys", "one_time_keys")) or prefix in (
                    "capabilities", "rooms.join.<id>.account_data"):
                name = "<key>" if key[:1].isupper() else name
            paths.add(prefix + name)
            paths |= shape(item, f"{prefix}{name}.", depth - 1)
    elif isinstance(value, list):
        for item in value[:20]:
            paths |= shape(item, prefix.rstrip(".") + "[].", depth - 1)
    return paths


def check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing {url}: only loopback servers are compared")


ROOT = Path(__file__).resolve().parents[1]
SYNAPSE_SH = ROOT.parent / "shared" / "bench" / "synapse.sh"


@contextlib.contextmanager
def started_servers() -> Iterator[None]:
    """A fresh Synapse (the benchmark's `synapse.sh`, port 18008) and a pocketserver of this
    checkout on a new data directory (port 18028, the benchmark's settings), both stopped after."""
    subprocess.run([str(SYNAPSE_SH), "start"], check=True, stdout=subprocess.DEVNULL)
    data = tempfile.mkdtemp(prefix="parity-")
    server = subprocess.Popen([sys.executable, "-m", "pocketserver", "serve", "--config",
                               str(ROOT / "bench" / "pocketserver-bench.toml")], cwd=ROOT,
                              env={**os.environ, "POCKETSERVER_DATA_DIR": data},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = Server("other", "http://127.0.0.1:18028", "")
        for _ in range(200):
            try:
                if probe.call("GET", "/_matrix/client/versions")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise SystemExit("pocketserver did not answer on 127.0.0.1:18028")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run([str(SYNAPSE_SH), "stop"], check=False, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--synapse", default="http://127.0.0.1:18008")
    p.add_argument("--other", default="http://127.0.0.1:18028")
    p.add_argument("--secret", default="hsbench-shared-secret", help="registration_shared_secret of both")
    p.add_argument("--json", help="write every difference here")
    p.add_argument("--dump", help="write both answers of every request into this folder")
    p.add_argument("--all", action="store_true", help="print the explained differences too")
    p.add_argument("--start", action="store_true",
                   help="start both servers first (fresh databases, default ports), stop them after")
    args = p.parse_args(argv)
    for url in (args.synapse, args.other):
        check_loopback(url)
    if args.start:
        with started_servers():
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    synapse, other = Server("synapse", args.synapse, args.secret), Server("other", args.other, args.secret)
    set_up(synapse)
    set_up(other)
    cases = [*room_cases(), *other_cases(), *sync_cases(), *flow_cases()]
    dump = None
    if args.dump:
        dump = Path(args.dump)
        dump.mkdir(parents=True, exist_ok=True)
    rows = compare(synapse, other, cases, dump)
    for row in rows:
        if row["kind"] == "unexplained" or args.all:
            s, o = row["synapse"], row["other"]
            body = "" if row["body"] is None else " " + json.dumps(row["body"])
            print(f"[{row['kind']}] {row['user']} {row['method']} {row['path']}{body}")
            if row["kind"] == "keys":
                print(f"    synapse only: {sorted(set(s['keys']) - set(o['keys']))}, "
                      f"other only: {sorted(set(o['keys']) - set(s['keys']))}")
            else:
                print(f"    synapse {s['status']} {s['errcode']} {str(s['error'])[:90]!r}")
                print(f"    other   {o['status']} {o['errcode']} {str(o['error'])[:90]!r}")
            if row["reason"]:
                print(f"    known: {row['reason']}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"{len(cases)} requests; differences: {summary}",
          file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if counts.get("unexplained") else 0


if __name__ == "__main__":
    sys.exit(main())
