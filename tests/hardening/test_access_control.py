"""Access control matrix: every route that names a room, event, alias or user, called by someone
who has no business there; dead tokens everywhere; admin-only powers.

The route list comes from the app's url_map, so a new route that takes such an ID fails
`test_every_id_route_has_a_case` until it gets a case here (or a stated reason it is public).
Spec: client-server-api, "Room History Visibility", "Client Authentication" (M_UNKNOWN_TOKEN),
the 403/404 responses of each endpoint.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Api

ID_ARGS = {"room_id", "room_id_or_alias", "event_id", "user_id", "room_alias", "media_id"}
SECRET_BODY = "the-secret-message-body"
SECRET_NAME = "The Secret Room Name"
SECRET_TOPIC = "the-secret-topic"
SECRET_REPLY = "the-secret-thread-reply"
SECRETS = (SECRET_BODY, SECRET_NAME, SECRET_TOPIC, SECRET_REPLY)
DENIED = {403: "M_FORBIDDEN", 404: "M_NOT_FOUND"}

# Routes an outsider may call with an ID and get an answer, and why that leaks nothing.
PUBLIC_BY_DESIGN: dict[tuple[str, str], str] = {
    ("GET", "/_matrix/client/v3/profile/<user_id>"):
        "profiles are public on this server, as Synapse's default (require_auth_for_profile_requests off)",
    ("GET", "/_matrix/client/v3/profile/<user_id>/<key_name>"): "profiles are public (as above)",
    ("POST", "/_matrix/client/v3/users/<user_id>/report"):
        "anyone may report a user; the answer is 200 whether or not the user exists",
    ("POST", "/_matrix/client/v3/rooms/<room_id>/report"):
        "anyone may report a room (spec: 404 only for an unknown room ID); nothing of the room is returned",
    ("GET", "/_matrix/client/v3/directory/list/room/<room_id>"):
        "spec: published/private visibility is public information, no auth",
    ("GET", "/_matrix/client/v3/directory/room/<room_alias>"):
        "spec: resolving an alias is public (aliases are meant to be shared)",
    ("POST", "/_matrix/client/v3/rooms/<room_id>/forget"):
        "forgetting a room one has no membership in changes nothing and answers 200 {}, as Synapse",
    # Own data that is merely keyed by a room ID: nothing of the room is read.
    ("PUT", "/_matrix/client/v3/room_keys/keys/<room_id>"): "the caller's own key backup, keyed by room ID",
    ("GET", "/_matrix/client/v3/room_keys/keys/<room_id>"): "the caller's own key backup",
    ("DELETE", "/_matrix/client/v3/room_keys/keys/<room_id>"): "the caller's own key backup",
    ("PUT", "/_matrix/client/v3/room_keys/keys/<room_id>/<session_id>"): "the caller's own key backup",
    ("GET", "/_matrix/client/v3/room_keys/keys/<room_id>/<session_id>"): "the caller's own key backup",
    ("DELETE", "/_matrix/client/v3/room_keys/keys/<room_id>/<session_id>"): "the caller's own key backup",
}
# Media is public by design once its mxc:// URI is known (the spec has no per-room media ACL):
# the URI is an unguessable capability, like a link. Uploading into another user's mxc is refused.
MEDIA_PUBLIC = "media is readable by any authenticated user who knows the mxc:// URI (spec: no media ACL)"


def fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: quote(values[m[1]], safe=""), rule)


def id_routes(api: Api) -> list[tuple[str, str]]:
    app = api.client.app
    out = []
    for rule in app.url_map.iter_rules():
        if set(rule.arguments) & ID_ARGS:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((method, rule.rule))
    return sorted(set(out))


def all_routes(api: Api) -> list[tuple[str, str]]:
    out = set()
    for rule in api.client.app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method, rule.rule))
    return sorted(out)


async def password_uia(api: Api, method: str, path: str, body: dict[str, Any], user: str, token: str) -> tuple[int, Any]:
    status, challenge = await api.call(method, path, body, token=token)
    assert status == 401, challenge
    return await api.call(method, path, {**body, "auth": {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "pw",
        "session": challenge["session"]}}, token=token)


class World:
    """alice's private room with history, bob in it, eve outside, and the values to fill routes with."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def build(self) -> "World":
        api = self.api
        self.alice = await api.register("alice")
        self.bob = await api.register("bob")
        self.eve = await api.register("eve")
        a, b = self.alice["access_token"], self.bob["access_token"]
        status, body = await api.call("POST", "/_matrix/client/v3/createRoom", {
            "preset": "private_chat", "name": SECRET_NAME, "topic": SECRET_TOPIC,
            "room_alias_name": "secretroom", "invite": [self.bob["user_id"]]}, token=a)
        assert status == 200, body
        self.room = body["room_id"]
        assert (await api.call("POST", f"/_matrix/client/v3/rooms/{self.room}/join", {}, token=b))[0] == 200
        status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{self.room}/send/m.room.message/t1",
                                      {"msgtype": "m.text", "body": SECRET_BODY}, token=a)
        assert status == 200, body
        self.event = body["event_id"]
        status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{self.room}/send/m.room.message/t2", {
            "msgtype": "m.text", "body": SECRET_REPLY,
            "m.relates_to": {"rel_type": "m.thread", "event_id": self.event}}, token=b)
        assert status == 200, body
        await api.call("PUT", f"/_matrix/client/v3/rooms/{self.room}/typing/{quote(self.alice['user_id'])}",
                       {"typing": True, "timeout": 30000}, token=a)
        await api.call("POST", f"/_matrix/client/v3/rooms/{self.room}/receipt/m.read/{self.event}", {}, token=a)
        status, body = await api.call("POST", "/_matrix/media/v3/upload", raw=b"media bytes",
                                      headers={"Content-Type": "text/plain"}, token=a)
        assert status == 200, body
        self.media_id = body["content_uri"].rsplit("/", 1)[1]
        status, body = await api.call("POST", "/_matrix/media/v1/create", token=a)
        assert status == 200, body
        self.created_media_id = body["content_uri"].rsplit("/", 1)[1]
        return self

    def values(self, user: str) -> dict[str, str]:
        return {"room_id": self.room, "room_id_or_alias": self.room, "event_id": self.event,
                "user_id": user, "room_alias": "#secretroom:test.local", "event_type": "m.room.message",
                "txn_id": "probe", "state_key": "", "rel_type": "m.thread", "key_name": "displayname",
                "data_type": "m.secret", "filter_id": "0", "receipt_type": "m.read", "server_name": "test.local",
                "media_id": self.media_id, "file_name": "f.txt", "session_id": "s", "version": "1",
                "device_id": "DEVICE", "kind": "override", "rule_id": "r", "tag": "m.favourite", "protocol": "irc",
                "stage": "m.login.registration_token"}


def body_for(method: str, rule: str, world: World) -> dict[str, Any] | None:
    if method in ("GET", "DELETE"):
        return None
    tail = rule.rsplit("/", 1)[-1]
    if tail in ("invite", "kick", "ban", "unban"):
        return {"user_id": world.bob["user_id"]}
    if "/typing/" in rule:
        return {"typing": True, "timeout": 1000}
    if "/report" in rule:
        return {"reason": "probe"}
    if "/presence/" in rule:
        return {"presence": "online"}
    if tail == "upgrade":
        return {"new_version": "12"}
    if "/directory/list/room/" in rule:
        return {"visibility": "public"}
    if "/directory/room/" in rule:
        return {"room_id": world.room}
    if tail == "read_markers":
        return {"m.fully_read": world.event}
    return {"body": "probe", "msgtype": "m.text", "name": "probe", "displayname": "probe"}


@pytest.fixture
async def world(api: Api) -> World:
    return await World(api).build()


async def test_every_id_route_has_a_case(world: World) -> None:
    """Every route with a room, event, alias, user or media ID is refused to an outsider or listed as public."""
    api, eve = world.api, world.eve["access_token"]
    values = world.values(world.alice["user_id"])
    problems = []
    for method, rule in id_routes(api):
        if (method, rule) in PUBLIC_BY_DESIGN:
            continue
        path = fill(rule, values)
        body = body_for(method, rule, world)
        if "/media/" in rule and method == "GET":    # MEDIA_PUBLIC: no JSON body to read
            resp_ = await api.client.open(path, method="GET", headers={"Authorization": f"Bearer {eve}"})
            assert resp_.status_code in (200, 400, 404), (rule, resp_.status_code)
            continue
        if "/upload/" in rule:   # uploadContentToMXC: into alice's created mxc
            path = fill(rule, {**values, "media_id": world.created_media_id})
            status, resp = await api.call(method, path, raw=b"x", headers={"Content-Type": "text/plain"}, token=eve)
        else:
            query = {"ts": "0", "dir": "f"} if rule.endswith("timestamp_to_event") else None
            status, resp = await api.call(method, path, body, token=eve, query=query)
        text = repr(resp)
        if status not in DENIED or (resp or {}).get("errcode") != DENIED[status]:
            problems.append(f"{method} {rule}: {status} {text[:200]}")
        elif any(s in text for s in SECRETS):
            problems.append(f"{method} {rule}: error body leaks a secret: {text[:200]}")
    assert not problems, "outsider not refused:\n" + "\n".join(problems)


async def test_outsider_error_does_not_reveal_membership(world: World) -> None:
    """Kick, invite, unban and ban answer an outsider the same whether the target is in the room or not."""
    api, eve = world.api, world.eve["access_token"]
    stranger = (await api.register("stranger"))["user_id"]
    for action in ("invite", "kick", "ban", "unban"):
        answers = []
        for target in (world.bob["user_id"], stranger):
            status, body = await api.call("POST", f"/_matrix/client/v3/rooms/{world.room}/{action}",
                                          {"user_id": target}, token=eve)
            answers.append((status, body["errcode"], body["error"].replace(target, "TARGET")))
        assert answers[0] == answers[1], (action, answers)
        assert answers[0][0] == 403


async def test_outsider_sync_sees_nothing_of_the_room(world: World) -> None:
    """No timeline, state, typing or receipts of a room the user is not in reach their /sync."""
    status, body = await world.api.call("GET", "/_matrix/client/v3/sync", token=world.eve["access_token"])
    assert status == 200
    text = repr(body)
    assert world.room not in text
    assert not any(s in text for s in SECRETS)


async def test_departed_member_sees_no_later_members(world: World) -> None:
    """A member who left reads members as of their leave, even with a later `at` token.

    Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/members" (history visibility).
    """
    api = world.api
    b, a = world.bob["access_token"], world.alice["access_token"]
    assert (await api.call("POST", f"/_matrix/client/v3/rooms/{world.room}/leave", {}, token=b))[0] == 200
    late = await api.register("latecomer")
    assert (await api.call("POST", f"/_matrix/client/v3/rooms/{world.room}/invite",
                           {"user_id": late["user_id"]}, token=a))[0] == 200
    status, sync = await api.call("GET", "/_matrix/client/v3/sync", token=a)
    assert status == 200
    for query in ({}, {"at": sync["next_batch"]}):
        status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{world.room}/members", query=query, token=b)
        assert status == 200, body
        assert late["user_id"] not in repr(body), query
    status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{world.room}/messages",
                                  query={"dir": "b", "limit": "50"}, token=b)
    assert status == 200 and late["user_id"] not in repr(body)


async def test_dead_tokens_are_refused_everywhere(world: World) -> None:
    """A logged-out token and a deactivated user's token get 401 M_UNKNOWN_TOKEN on every authenticated route."""
    api = world.api
    gone = await api.register("gone")
    status, _ = await api.call("POST", "/_matrix/client/v3/logout", {}, token=gone["access_token"])
    assert status == 200
    quitter = await api.register("quitter")
    status, body = await password_uia(api, "POST", "/_matrix/client/v3/account/deactivate", {}, "quitter",
                                      quitter["access_token"])
    assert status == 200, body
    status, body = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "quitter"}, "password": "pw"})
    assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED"
    problems = []
    for who in (gone, quitter):
        values = world.values(who["user_id"])
        for method, rule in all_routes(api):
            if (method, rule) in NO_AUTH:
                continue
            status, resp = await api.call(method, fill(rule, values), body_for(method, rule, world),
                                          token=who["access_token"])
            if status != 401 or (resp or {}).get("errcode") != "M_UNKNOWN_TOKEN":
                problems.append(f"{who['user_id']} {method} {rule}: {status} {repr(resp)[:120]}")
    assert not problems, "dead token not refused:\n" + "\n".join(problems)


# Routes that never read an access token, so a dead one changes nothing: they serve public data
# or are how one gets a token in the first place.
NO_AUTH: set[tuple[str, str]] = {
    ("GET", "/"), ("GET", "/.well-known/matrix/client"), ("GET", "/.well-known/matrix/server"),
    ("GET", "/.well-known/matrix/support"),
    ("GET", "/_matrix/client/versions"), ("GET", "/_matrix/client/v3/login"), ("POST", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/refresh"), ("POST", "/_matrix/client/v3/register"),
    ("GET", "/_matrix/client/v3/register/available"),
    ("GET", "/_matrix/client/v1/register/m.login.registration_token/validity"),
    ("GET", "/_synapse/admin/v1/register"), ("POST", "/_synapse/admin/v1/register"),
    ("GET", "/_matrix/client/v3/directory/room/<room_alias>"),
    ("GET", "/_matrix/client/v3/directory/list/room/<room_id>"),
    ("GET", "/_pocketserver/metrics"),
    # The registration token's fallback page, opened in a browser during sign-up.
    ("GET", "/_matrix/client/v3/auth/<stage>/fallback/web"), ("POST", "/_matrix/client/v3/auth/<stage>/fallback/web"),
    # Takes an OpenID token in its query, never an access token.
    ("GET", "/_matrix/federation/v1/openid/userinfo"),
    # 404 M_UNRECOGNIZED for everyone while url_preview_enabled is off (the default).
    ("GET", "/_matrix/client/v1/media/preview_url"),
    # Legacy unauthenticated media (frozen for new uploads by freeze_unauthenticated_media).
    *{("GET", f"/_matrix/media/{v}/{p}") for v in ("v3", "r0", "v1") for p in (
        "config", "download/<server_name>/<media_id>", "download/<server_name>/<media_id>/<path:file_name>",
        "thumbnail/<server_name>/<media_id>", "preview_url")},
}


async def test_admin_only_powers_refuse_non_admins(world: World) -> None:
    """Publishing someone else's room, deleting their alias, reading a private room's aliases: admins only."""
    api = world.api
    await api.server.registration.create_user("root", "pw", admin=True)
    status, root = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "root"}, "password": "pw"})
    assert status == 200, root
    eve, admin = world.eve["access_token"], root["access_token"]
    checks = [("GET", f"/_matrix/client/v3/rooms/{world.room}/aliases", None),
              ("PUT", f"/_matrix/client/v3/directory/list/room/{world.room}", {"visibility": "public"}),
              ("DELETE", f"/_matrix/client/v3/directory/room/{quote('#secretroom:test.local')}", None),
              ("PUT", f"/_matrix/client/v1/admin/suspend/{quote(world.bob['user_id'])}", {"suspended": False}),
              ("PUT", f"/_matrix/client/v1/admin/lock/{quote(world.bob['user_id'])}", {"locked": False})]
    for method, path, body in checks:
        status, resp = await api.call(method, path, body, token=eve)
        assert status == 403 and resp["errcode"] == "M_FORBIDDEN", (path, status, resp)
        status, resp = await api.call(method, path, body, token=admin)
        assert status == 200, (path, status, resp)
    # Shared-secret registration (creates admins) needs the secret's HMAC.
    status, nonce = await api.call("GET", "/_synapse/admin/v1/register")
    status, resp = await api.call("POST", "/_synapse/admin/v1/register", {
        "nonce": nonce["nonce"], "username": "mallory", "password": "pw", "admin": True, "mac": "00" * 20})
    assert status == 403 and resp["errcode"] == "M_FORBIDDEN"
