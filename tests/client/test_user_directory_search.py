"""User directory search over HTTP and through matrix-js-sdk: who can be found, and refusals.

Spec: client-server-api, "POST /_matrix/client/v3/user_directory/search".
"""
from __future__ import annotations

from urllib.parse import quote

from tests.js_client import JsClient

V3 = "/_matrix/client/v3"
SEARCH = f"{V3}/user_directory/search"


async def people(api) -> dict[str, dict]:
    """alice shares a private room with bob; carol is in a public room, erin in a world-readable
    one, dave only in a private room of his own; frank shared a room with alice, then deactivated."""
    users = {name: await api.register(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")}
    token = {name: u["access_token"] for name, u in users.items()}
    for name in users:
        status, body = await api.call("PUT", f"{V3}/profile/{quote(users[name]['user_id'])}/displayname",
                                      {"displayname": f"{name.title()} Example"}, token=token[name])
        assert status == 200, body
    shared = await api.create_room(token["alice"], preset="private_chat", invite=[users["bob"]["user_id"],
                                                                                    users["frank"]["user_id"]])
    for name in ("bob", "frank"):
        assert (await api.call("POST", f"{V3}/rooms/{shared}/join", {}, token=token[name]))[0] == 200
    await api.create_room(token["carol"], preset="public_chat")
    await api.create_room(token["erin"], preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    await api.create_room(token["dave"], preset="private_chat")
    status, challenge = await api.call("POST", f"{V3}/account/deactivate", {}, token=token["frank"])
    status, body = await api.call("POST", f"{V3}/account/deactivate", {"auth": {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "frank"}, "password": "pw",
        "session": challenge["session"]}}, token=token["frank"])
    assert status == 200, body
    return users


async def found(api, token: str, term: str, **extra) -> list[str]:
    status, body = await api.call("POST", SEARCH, {"search_term": term, **extra}, token=token)
    assert status == 200, body
    assert set(body) == {"results", "limited"}
    return [r["user_id"].split(":")[0][1:] for r in body["results"]]


async def test_who_a_user_can_find(api) -> None:
    users = await people(api)
    alice = users["alice"]["access_token"]
    assert sorted(await found(api, alice, "example")) == ["bob", "carol", "erin"]     # never oneself
    assert (await found(api, alice, "example"))[0] == "bob"       # shares a room: ranked first
    assert await found(api, alice, "dave") == []                   # in no room alice can see
    assert await found(api, alice, "frank") == []                  # deactivated
    assert await found(api, alice, "CAROL EX") == ["carol"]
    status, body = await api.call("POST", SEARCH, {"search_term": "bob"}, token=alice)
    assert body == {"results": [{"user_id": users["bob"]["user_id"], "display_name": "Bob Example"}],
                    "limited": False}
    status, body = await api.call("POST", SEARCH, {"search_term": "example", "limit": 2}, token=alice)
    assert len(body["results"]) == 2 and body["limited"] is True
    # Joining a room with dave makes him findable at once.
    dave_room = await api.create_room(users["dave"]["access_token"], preset="public_chat")
    assert (await api.call("POST", f"{V3}/rooms/{dave_room}/join", {}, token=alice))[0] == 200
    assert await found(api, alice, "dave") == ["dave"]


async def test_searching_all_users_when_configured(make_api) -> None:
    api = await make_api(user_directory_search_all_users=True)
    users = await people(api)
    assert sorted(await found(api, users["alice"]["access_token"], "example")) == ["bob", "carol", "dave", "erin"]


async def test_refusals(make_api) -> None:
    api = await make_api(allow_guest_access=True)
    alice = (await api.register("alice"))["access_token"]
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"search_term": 5}, "M_BAD_JSON"),
                          ({"search_term": "a", "limit": "ten"}, "M_INVALID_PARAM"),
                          ({"search_term": "a", "limit": -1}, "M_INVALID_PARAM")):
        status, resp = await api.call("POST", SEARCH, body, token=alice)
        assert status == 400 and resp["errcode"] == errcode, (body, resp)
    status, resp = await api.call("POST", SEARCH, {"search_term": "a"})
    assert status == 401 and resp["errcode"] == "M_MISSING_TOKEN", resp
    status, guest = await api.call("POST", f"{V3}/register", {}, query={"kind": "guest"})
    assert status == 200, guest
    status, resp = await api.call("POST", SEARCH, {"search_term": "a"}, token=guest["access_token"])
    assert status == 403 and resp["errcode"] == "M_GUEST_ACCESS_FORBIDDEN", resp


async def test_js_sdk_finds_a_room_mate(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "js-finder", "js-finder-pw")
    mate = await homeserver.register_shared_secret(http, "js-mate", "js-mate-pw")
    headers = {"Authorization": f"Bearer {mate['access_token']}"}
    async with http.put(f"{homeserver.base_url}{V3}/profile/{quote(mate['user_id'])}/displayname",
                        json={"displayname": "Marjorie Mate"}, headers=headers) as resp:
        assert resp.status == 200
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-finder", password="js-finder-pw")
        room_id = (await js.call("createRoom", name="Finding", invite=[mate["user_id"]]))["room_id"]
        async with http.post(f"{homeserver.base_url}{V3}/rooms/{quote(room_id)}/join", json={},
                             headers=headers) as resp:
            assert resp.status == 200
        result = await js.call("searchUserDirectory", term="marj", limit=5)
        assert (result["limited"], result["results"]) == (
            False, [{"user_id": mate["user_id"], "display_name": "Marjorie Mate"}])
    finally:
        await js.close()


async def test_names_are_found_whatever_their_unicode_form(api) -> None:
    """A name typed decomposed ("e" + combining accent, as some keyboards write it) or in
    full-width letters finds the composed name: both sides are NFKC-normalised, as Synapse's index."""
    jose, finder = await api.register("jose"), await api.register("finder")
    await api.call("PUT", f"{V3}/profile/{quote(jose['user_id'])}/displayname", {"displayname": "Jos\u00e9 Example"},
                   token=jose["access_token"])
    room = await api.create_room(jose["access_token"], preset="public_chat")
    assert (await api.call("POST", f"{V3}/rooms/{room}/join", {}, token=finder["access_token"]))[0] == 200
    for term in ("jos\u00e9", "jose\u0301", "\uff4a\uff4f\uff53\uff45\u0301"):
        _, body = await api.call("POST", SEARCH, {"search_term": term}, token=finder["access_token"])
        assert [r["user_id"] for r in body["results"]] == [jose["user_id"]], (term, body)
