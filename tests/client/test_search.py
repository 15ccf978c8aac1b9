"""Server-side search: full-text matches, ordering, context, groups, visibility and redactions.

Spec: client-server-api, "Server Side Search".
"""
from __future__ import annotations

import asyncio

R = "/_matrix/client/v3/rooms"
SEARCH = "/_matrix/client/v3/search"


async def room_with_messages(api, *bodies, preset="public_chat"):
    alice = await api.register("alice")
    token = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": preset, "name": "Recipes"}, token=token)
    room = body["room_id"]
    ids = []
    for i, text in enumerate(bodies):
        _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", {"msgtype": "m.text", "body": text},
                                 token=token)
        ids.append(sent["event_id"])
    await api.server.search_indexer.catch_up()
    return token, room, ids


def query(term, **extra):
    return {"search_categories": {"room_events": {"search_term": term, **extra}}}


async def test_search_finds_words_and_prefixes(api) -> None:
    token, room, ids = await room_with_messages(api, "Grandma's apple pie", "Pancakes on Sunday", "apple crumble")
    status, body = await api.call("POST", SEARCH, query("apple"), token=token)
    assert status == 200, body
    found = body["search_categories"]["room_events"]
    assert found["count"] == 2 and found["highlights"] == ["apple"]
    assert {r["result"]["event_id"] for r in found["results"]} == {ids[0], ids[2]}
    assert all(r["rank"] > 0 for r in found["results"])
    _, body = await api.call("POST", SEARCH, query("panc", order_by="recent"), token=token)
    assert [r["result"]["content"]["body"] for r in body["search_categories"]["room_events"]["results"]] == \
        ["Pancakes on Sunday"]
    _, body = await api.call("POST", SEARCH, query("recipes", keys=["content.name"]), token=token)
    assert body["search_categories"]["room_events"]["results"][0]["result"]["type"] == "m.room.name"


async def test_context_groups_pagination(api) -> None:
    token, room, ids = await room_with_messages(api, *[f"soup number {i}" for i in range(5)])
    _, body = await api.call("POST", SEARCH, query("soup", order_by="recent", filter={"limit": 2},
                                                  event_context={"before_limit": 1, "after_limit": 1,
                                                                 "include_profile": True},
                                                  groupings={"group_by": [{"key": "room_id"}]}), token=token)
    found = body["search_categories"]["room_events"]
    assert [r["result"]["content"]["body"] for r in found["results"]] == ["soup number 4", "soup number 3"]
    ctx = found["results"][1]["context"]
    assert [e["content"]["body"] for e in ctx["events_before"]] == ["soup number 2"]
    assert [e["content"]["body"] for e in ctx["events_after"]] == ["soup number 4"]
    assert ctx["profile_info"]["@alice:test.local"]["displayname"] == "alice"
    assert found["groups"]["room_id"][room]["results"] == [r["result"]["event_id"] for r in found["results"]]
    status, more = await api.call("POST", SEARCH, query("soup", order_by="recent", filter={"limit": 2}),
                                  token=token, query={"next_batch": found["next_batch"]})
    assert [r["result"]["content"]["body"] for r in more["search_categories"]["room_events"]["results"]] == \
        ["soup number 2", "soup number 1"]
    status, last = await api.call("POST", SEARCH, query("soup", order_by="recent", filter={"limit": 2}),
                                  token=token, query={"next_batch": more["search_categories"]["room_events"]["next_batch"]})
    found = last["search_categories"]["room_events"]
    assert [r["result"]["content"]["body"] for r in found["results"]] == ["soup number 0"]
    assert "next_batch" not in found
    # A full last page says there is no more (count 5, offset 4 + limit 1).
    status, exact = await api.call("POST", SEARCH, query("soup", order_by="recent", filter={"limit": 1}),
                                   token=token, query={"next_batch": "4"})
    assert len(exact["search_categories"]["room_events"]["results"]) == 1
    assert "next_batch" not in exact["search_categories"]["room_events"]


async def test_search_respects_membership_visibility_and_redaction(api) -> None:
    token, room, ids = await room_with_messages(api, "secret family recipe", "public note",
                                                preset="private_chat")
    outsider = await api.register("mallory")
    _, body = await api.call("POST", SEARCH, query("secret"), token=outsider["access_token"])
    assert body["search_categories"]["room_events"]["results"] == []
    await api.call("PUT", f"{R}/{room}/redact/{ids[0]}/r1", {}, token=token)
    await api.server.search_indexer.catch_up()
    _, body = await api.call("POST", SEARCH, query("secret"), token=token)
    assert body["search_categories"]["room_events"]["results"] == []


async def test_bad_search_requests(api) -> None:
    token, _, _ = await room_with_messages(api, "x")
    for payload, errcode in [({}, "M_MISSING_PARAM"), (query(5), "M_MISSING_PARAM"),
                             (query("x", keys=["content.secret"]), "M_BAD_JSON"),
                             (query("x", order_by="size"), "M_BAD_JSON"),
                             (query("x", filter={"limit": -3}), "M_BAD_JSON")]:
        status, body = await api.call("POST", SEARCH, payload, token=token)
        assert (status, body["errcode"]) == (400, errcode), payload
    status, body = await api.call("POST", SEARCH, query("x"), token=token, query={"next_batch": "nope"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("POST", SEARCH, query("***"), token=token)
    assert status == 200 and body["search_categories"]["room_events"]["results"] == []


async def test_index_takes_non_empty_string_fields_in_rounds(api, monkeypatch) -> None:
    """Only a non-empty string body, name or topic is indexed; the indexer works in rounds of BATCH."""
    from pocketserver.storage import search as search_store
    monkeypatch.setattr(search_store, "BATCH", 2)
    token, room, ids = await room_with_messages(api, "apple one")
    for i, body in enumerate([{"text": "apple"}, ["apple"], "", 7, "apple two"]):
        await api.call("PUT", f"{R}/{room}/send/m.room.message/odd{i}", {"msgtype": "m.text", "body": body},
                       token=token)
    await api.call("PUT", f"{R}/{room}/state/m.room.topic", {"topic": "apple orchard"}, token=token)
    await api.server.search_indexer.catch_up()
    _, body = await api.call("POST", SEARCH, query("apple", keys=["content.body", "content.topic"]), token=token)
    found = body["search_categories"]["room_events"]["results"]
    assert sorted(str(r["result"]["content"].get("body", r["result"]["content"].get("topic"))) for r in found) == \
        ["apple one", "apple orchard", "apple two"]


async def test_a_search_finds_a_message_sent_just_before_it(api) -> None:
    """The index rounds wait for a commit to ride along in; a search doesn't wait for them."""
    alice = await api.register("alice")
    token = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=token)
    room = body["room_id"]
    _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "rhubarb"},
                             token=token)
    status, body = await api.call("POST", SEARCH, query("rhubarb"), token=token)
    assert status == 200, body
    assert [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]] == \
        [sent["event_id"]]


async def test_indexing_a_message_rides_along_in_the_next_commit(api, monkeypatch) -> None:
    from pocketserver.search import indexer
    monkeypatch.setattr(indexer, "GATHER_SECONDS", 0.01)
    alice = await api.register("alice")
    token = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=token)
    room = body["room_id"]
    await api.server.search_indexer.catch_up()
    _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "rhubarb"},
                             token=token)
    stats = api.server.db.writer.stats
    commits = stats.commits
    await asyncio.sleep(0.3)
    assert stats.commits == commits                  # the round waits for company
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.read/{sent['event_id']}", {}, token=token)
    assert status == 200
    assert stats.commits == commits + 1              # the receipt's commit carried it
    indexed = await api.server.db.fetchone("SELECT position FROM search_progress")
    event = await api.server.db.fetchone("SELECT stream_ordering FROM events WHERE event_id = ?", (sent["event_id"],))
    assert indexed[0] >= event[0]


async def test_steady_sends_are_indexed_in_gathered_rounds_not_one_per_batch(api, monkeypatch) -> None:
    """A round indexes what was committed when it ran; newer events wait for the next gathered
    round, or an index job would ride in every batch while people keep sending."""
    from pocketserver.search import indexer
    from pocketserver.storage import search as search_store
    monkeypatch.setattr(indexer, "GATHER_SECONDS", 0.02)
    rounds = 0
    index_new_events = search_store.index_new_events

    async def counted(tx, upto):
        nonlocal rounds
        rounds += 1
        return await index_new_events(tx, upto)
    monkeypatch.setattr(search_store, "index_new_events", counted)
    alice = await api.register("alice")
    token = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=token)
    room = body["room_id"]
    started = asyncio.get_running_loop().time()
    for i in range(150):
        status, _ = await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", {"msgtype": "m.text", "body": f"m{i}"},
                                   token=token)
        assert status == 200
    elapsed = asyncio.get_running_loop().time() - started
    assert rounds <= elapsed / 0.02 + 2, f"{rounds} index rounds for 150 sends in {elapsed:.2f} s"
    _, found = await api.call("POST", SEARCH, query("m149"), token=token)
    assert found["search_categories"]["room_events"]["count"] == 1
