"""Relations over HTTP: child events, recursion, pagination, threads, bundled aggregations and refusals.

Spec: client-server-api, "Forming relationships between events", "Aggregations of child events",
"Relationships API", "Threading", "Event replacements", "Reference relations".
"""
from __future__ import annotations

import itertools
import json
from typing import Any

R3 = "/_matrix/client/v3/rooms"
R1 = "/_matrix/client/v1/rooms"
ALICE, BOB, CAROL = "@alice:test.local", "@bob:test.local", "@carol:test.local"
_txn = itertools.count()



async def make_room(api, token: str, **body: Any) -> str:
    status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", body, token=token)
    assert status == 200, resp
    return resp["room_id"]


async def send(api, token: str, room: str, content: dict, event_type: str = "m.room.message") -> str:
    status, resp = await api.call("PUT", f"{R3}/{room}/send/{event_type}/t{next(_txn)}", content, token=token)
    assert status == 200, resp
    return resp["event_id"]


def text(body: str, **extra: Any) -> dict:
    return {"msgtype": "m.text", "body": body, **extra}


def thread(root: str, body: str) -> dict:
    return text(body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})


def edit(original: str, body: str) -> dict:
    return text(f"* {body}", **{"m.new_content": text(body),
                                "m.relates_to": {"rel_type": "m.replace", "event_id": original}})


def reference(target: str) -> dict:
    return text("ref", **{"m.relates_to": {"rel_type": "m.reference", "event_id": target}})


async def relations(api, token: str, room: str, path: str, **query: str) -> tuple[int, Any]:
    return await api.call("GET", f"{R1}/{room}/relations/{path}", query=query, token=token)


async def public_room_with(api, a: str, *others: str) -> str:
    room = await make_room(api, a, preset="public_chat")
    for t in others:
        assert (await api.call("POST", f"{R3}/{room}/join", {}, token=t))[0] == 200
    return room


async def test_children_filtered_by_rel_type_and_event_type(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    root = await send(api, a, room, text("root"))
    t1 = await send(api, b, room, thread(root, "one"))
    ref = await send(api, b, room, reference(root))
    react = await send(api, b, room, {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}},
                       "m.reaction")
    await send(api, b, room, text("reply", **{"m.relates_to": {"m.in_reply_to": {"event_id": root}}}))
    await send(api, a, room, text("unrelated"))

    status, body = await relations(api, a, room, root)
    assert status == 200, body
    assert [e["event_id"] for e in body["chunk"]] == [react, ref, t1]     # newest first; replies are not relations
    assert "next_batch" not in body and "prev_batch" not in body and "recursion_depth" not in body
    _, body = await relations(api, a, room, f"{root}/m.thread")
    assert [e["event_id"] for e in body["chunk"]] == [t1]
    _, body = await relations(api, a, room, f"{root}/m.annotation/m.reaction")
    assert [e["event_id"] for e in body["chunk"]] == [react]
    _, body = await relations(api, a, room, f"{root}/m.annotation/m.room.message")
    assert body["chunk"] == []
    _, body = await relations(api, a, room, root, dir="f")
    assert [e["event_id"] for e in body["chunk"]] == [t1, ref, react]


async def test_pagination_across_pages(api) -> None:
    (a,) = await api.tokens("alice")
    room = await make_room(api, a)
    root = await send(api, a, room, text("root"))
    children = [await send(api, a, room, thread(root, str(i))) for i in range(7)]

    seen, pages, token = [], [], None
    while True:
        query = {"limit": "3", **({"from": token} if token else {})}
        status, page = await relations(api, a, room, f"{root}/m.thread", **query)
        assert status == 200, page
        assert page.get("prev_batch") == token
        pages.append(page)
        seen += [e["event_id"] for e in page["chunk"]]
        token = page.get("next_batch")
        if token is None:
            break
    assert [len(p["chunk"]) for p in pages] == [3, 3, 1]
    assert seen == list(reversed(children))

    # Forwards, in pages of 4.
    _, first = await relations(api, a, room, root, dir="f", limit="4")
    _, second = await relations(api, a, room, root, dir="f", limit="4", **{"from": first["next_batch"]})
    assert [e["event_id"] for e in first["chunk"] + second["chunk"]] == children
    assert "next_batch" not in second

    # relations.yaml: `from` of page 1 with `to` of page 2 covers page 2; the other way round is empty.
    p1, p2 = pages[0]["next_batch"], pages[1]["next_batch"]
    _, body = await relations(api, a, room, root, limit="10", **{"from": p1, "to": p2})
    assert [e["event_id"] for e in body["chunk"]] == [e["event_id"] for e in pages[1]["chunk"]]
    _, body = await relations(api, a, room, root, limit="10", **{"from": p2, "to": p1})
    assert body["chunk"] == []

    # A /messages token works as `from` too.
    _, messages = await api.call("GET", f"{R3}/{room}/messages", query={"limit": "1"}, token=a)
    _, body = await relations(api, a, room, root, limit="2", **{"from": messages["start"]})
    assert [e["event_id"] for e in body["chunk"]] == [children[6], children[5]]


async def test_recurse(api) -> None:
    (a,) = await api.tokens("alice")
    room = await make_room(api, a)
    root = await send(api, a, room, text("root"))
    reply = await send(api, a, room, thread(root, "reply"))
    reply_edit = await send(api, a, room, edit(reply, "reply!"))
    deeper = await send(api, a, room, reference(reply_edit))
    deepest = await send(api, a, room, reference(deeper))

    _, body = await relations(api, a, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [reply]
    _, body = await relations(api, a, room, root, recurse="true")
    assert [e["event_id"] for e in body["chunk"]] == [deeper, reply_edit, reply]   # three levels
    assert body["recursion_depth"] == 3
    assert deepest not in [e["event_id"] for e in body["chunk"]]
    _, body = await relations(api, a, room, root, recurse="false")
    assert [e["event_id"] for e in body["chunk"]] == [reply] and body["recursion_depth"] == 1
    # Filters apply at every level: the edit hangs off a thread event, which m.replace does not match.
    _, body = await relations(api, a, room, f"{root}/m.replace", recurse="true")
    assert body["chunk"] == []
    _, body = await relations(api, a, room, f"{reply}/m.replace", recurse="true")
    assert [e["event_id"] for e in body["chunk"]] == [reply_edit]


async def test_refusals(api) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    room = await make_room(api, a, preset="private_chat")
    root = await send(api, a, room, text("root"))
    other_room = await make_room(api, a)
    elsewhere = await send(api, a, other_room, text("elsewhere"))

    status, body = await relations(api, c, room, root)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{R1}/{room}/threads", token=c)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await relations(api, a, room, "$unknown")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await relations(api, a, room, elsewhere)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await relations(api, a, "!nope:test.local", root)     # "not in room", as Synapse
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{R1}/{room}/relations/{root}")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    for query in ({"dir": "x"}, {"limit": "ten"}, {"limit": "-1"}, {"recurse": "yes"}, {"from": "garbage"},
                  {"to": "ps1_x"}):
        status, body = await relations(api, a, room, root, **query)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query
    for query in ({"include": "mine"}, {"limit": "0"}, {"limit": "x"}, {"from": "nope"}):
        status, body = await api.call("GET", f"{R1}/{room}/threads", query=query, token=a)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query
    status, body = await relations(api, a, room, root, limit="0")
    assert (status, body["chunk"]) == (200, [])
    del b


async def test_parent_and_children_follow_history_visibility(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await make_room(api, a, preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}])
    hidden_root = await send(api, a, room, text("before bob"))
    await send(api, a, room, thread(hidden_root, "also before bob"))
    assert (await api.call("POST", f"{R3}/{room}/join", {}, token=b))[0] == 200
    root = await send(api, a, room, text("root"))
    early = await send(api, a, room, thread(root, "early"))
    assert (await api.call("POST", f"{R3}/{room}/leave", {}, token=b))[0] == 200
    late = await send(api, a, room, thread(root, "late"))

    status, body = await relations(api, b, room, hidden_root)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    _, body = await relations(api, b, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [early]
    _, body = await relations(api, a, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [late, early]
    # The thread summary Bob sees counts only what he may see; so does his thread list.
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=b)
    summary = body["unsigned"]["m.relations"]["m.thread"]
    assert (summary["count"], summary["latest_event"]["event_id"]) == (1, early)
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    assert body["unsigned"]["m.relations"]["m.thread"]["count"] == 2
    _, body = await api.call("GET", f"{R1}/{room}/threads", token=b)
    assert [e["event_id"] for e in body["chunk"]] == [root]
    _, body = await api.call("GET", f"{R1}/{room}/threads", token=a)
    assert [e["event_id"] for e in body["chunk"]] == [root, hidden_root]


async def test_bundled_aggregations_on_messages_event_and_context(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    root = await send(api, a, room, text("root"))
    await send(api, a, room, edit(root, "first edit"))
    await send(api, b, room, edit(root, "bob may not edit"))                  # other sender: ignored
    latest_edit = await send(api, a, room, edit(root, "second edit"))
    await send(api, a, room, text("no new content", **{"m.relates_to": {"rel_type": "m.replace", "event_id": root}}))
    await send(api, b, room, thread(root, "t1"))
    t2 = await send(api, b, room, thread(root, "t2"))
    t2_edit = await send(api, b, room, edit(t2, "t2 edited"))
    ref1 = await send(api, b, room, reference(root))
    ref2 = await send(api, a, room, reference(root))

    def check(event: dict, user: str) -> None:
        rel = event["unsigned"]["m.relations"]
        assert rel["m.replace"]["event_id"] == latest_edit
        assert rel["m.replace"]["content"]["m.new_content"]["body"] == "second edit"
        assert rel["m.replace"]["sender"] == ALICE and rel["m.replace"]["room_id"] == room
        assert event["content"]["body"] == "root"                            # content is left intact
        summary = rel["m.thread"]
        assert summary["count"] == 2 and summary["latest_event"]["event_id"] == t2
        assert summary["current_user_participated"] is True
        assert summary["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == t2_edit
        assert rel["m.reference"] == {"chunk": [{"event_id": ref1}, {"event_id": ref2}]}

    status, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    assert status == 200, body
    check(body, ALICE)
    _, body = await api.call("GET", f"{R3}/{room}/messages", query={"limit": "50"}, token=b)
    by_id = {e["event_id"]: e for e in body["chunk"]}
    check(by_id[root], BOB)
    assert "m.relations" not in by_id[latest_edit]["unsigned"]            # edits get no aggregations
    assert by_id[t2]["unsigned"]["m.relations"]["m.replace"]["event_id"] == t2_edit
    _, body = await api.call("GET", f"{R3}/{room}/context/{ref2}", query={"limit": "50"}, token=a)
    check(next(e for e in body["events_before"] if e["event_id"] == root), ALICE)
    _, body = await relations(api, a, room, f"{root}/m.thread")
    assert body["chunk"][0]["unsigned"]["m.relations"]["m.replace"]["event_id"] == t2_edit
    # State events get no bundled aggregations.
    _, state = await api.call("GET", f"{R3}/{room}/state", token=a)
    assert all("m.relations" not in e["unsigned"] for e in state)


async def test_participation_and_ignored_users(api) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    room = await public_room_with(api, a, b, c)
    root = await send(api, a, room, text("root"))
    await send(api, b, room, thread(root, "from bob"))
    carol_reply = await send(api, c, room, thread(root, "from carol"))

    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=b)
    summary = body["unsigned"]["m.relations"]["m.thread"]
    assert (summary["count"], summary["current_user_participated"]) == (2, True)
    assert summary["latest_event"]["event_id"] == carol_reply
    status, _ = await api.call("PUT", f"/_matrix/client/v3/user/{BOB}/account_data/m.ignored_user_list",
                               {"ignored_users": {CAROL: {}}}, token=b)
    assert status == 200
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=b)
    summary = body["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 1 and summary["latest_event"]["content"]["body"] == "from bob"
    _, body = await relations(api, b, room, root)
    assert [e["content"]["body"] for e in body["chunk"]] == ["from bob"]

    (d,) = await api.tokens("dave")
    assert (await api.call("POST", f"{R3}/{room}/join", {}, token=d))[0] == 200
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=d)
    assert body["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is False


async def test_redactions_break_relations(api) -> None:
    (a,) = await api.tokens("alice")
    room = await make_room(api, a)
    root = await send(api, a, room, text("root"))
    first = await send(api, a, room, edit(root, "first"))
    second = await send(api, a, room, edit(root, "second"))
    reply = await send(api, a, room, thread(root, "reply"))

    assert (await api.call("PUT", f"{R3}/{room}/redact/{second}/r1", {}, token=a))[0] == 200
    assert (await api.call("PUT", f"{R3}/{room}/redact/{reply}/r2", {}, token=a))[0] == 200
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    rel = body["unsigned"]["m.relations"]
    assert rel["m.replace"]["event_id"] == first and "m.thread" not in rel    # back to the earlier edit
    _, body = await relations(api, a, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [first]

    # A redacted original gets no m.replace bundle, but its children stay reachable.
    assert (await api.call("PUT", f"{R3}/{room}/redact/{root}/r3", {}, token=a))[0] == 200
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    assert "m.relations" not in body["unsigned"] and body["content"] == {}
    _, body = await relations(api, a, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [first]


async def test_encrypted_relations_use_cleartext(api) -> None:
    (a,) = await api.tokens("alice")
    room = await make_room(api, a)
    sealed = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA", "sender_key": "k", "device_id": "D",
              "session_id": "s"}
    root = await send(api, a, room, sealed, "m.room.encrypted")
    replacement = await send(api, a, room, {**sealed, "m.relates_to": {"rel_type": "m.replace", "event_id": root}},
                             "m.room.encrypted")
    reply = await send(api, a, room, {**sealed, "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
                       "m.room.encrypted")
    _, body = await relations(api, a, room, f"{root}/m.thread/m.room.encrypted")
    assert [e["event_id"] for e in body["chunk"]] == [reply]
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    assert body["unsigned"]["m.relations"]["m.replace"]["event_id"] == replacement
    assert body["unsigned"]["m.relations"]["m.thread"]["count"] == 1


async def test_threads_list(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    roots = [await send(api, a, room, text(f"root {i}")) for i in range(4)]
    await send(api, a, room, thread(roots[0], "a0"))
    await send(api, b, room, thread(roots[1], "b1"))
    await send(api, a, room, thread(roots[2], "a2"))
    await send(api, a, room, thread(roots[0], "a0 again"))        # roots[0] is now the most recent thread
    bob_root = await send(api, b, room, text("bob's root"))
    await send(api, a, room, thread(bob_root, "on bob's"))
    await send(api, a, room, text("no thread"))

    seen, token = [], None
    for _ in range(5):
        query = {"limit": "2", **({"from": token} if token else {})}
        status, page = await api.call("GET", f"{R1}/{room}/threads", query=query, token=a)
        assert status == 200, page
        seen += [e["event_id"] for e in page["chunk"]]
        assert all("m.thread" in e["unsigned"]["m.relations"] for e in page["chunk"])
        token = page.get("next_batch")
        if token is None:
            break
    assert seen == [bob_root, roots[0], roots[2], roots[1]]

    _, body = await api.call("GET", f"{R1}/{room}/threads", query={"include": "participated"}, token=b)
    assert [e["event_id"] for e in body["chunk"]] == [bob_root, roots[1]]
    _, body = await api.call("GET", f"{R1}/{room}/threads", query={"include": "all", "limit": "1"}, token=b)
    assert [e["event_id"] for e in body["chunk"]] == [bob_root] and "next_batch" in body
    assert json.dumps(body)   # serialisable


async def test_ignored_thread_root_is_listed_redacted(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    root = await send(api, a, room, text("secret root"))
    await send(api, b, room, thread(root, "reply"))
    await api.call("PUT", f"/_matrix/client/v3/user/{BOB}/account_data/m.ignored_user_list",
                   {"ignored_users": {ALICE: {}}}, token=b)
    _, body = await api.call("GET", f"{R1}/{room}/threads", token=b)
    (listed,) = body["chunk"]
    assert listed["event_id"] == root and listed["content"] == {}
    assert listed["unsigned"]["m.relations"]["m.thread"]["count"] == 1


async def test_edit_tie_broken_by_event_id(api, monkeypatch) -> None:
    (a,) = await api.tokens("alice")
    room = await make_room(api, a)
    root = await send(api, a, room, text("root"))
    monkeypatch.setattr("pocketserver.roomserver.now_ms", lambda: 1_700_000_000_000)
    edits = [await send(api, a, room, edit(root, str(i))) for i in range(3)]
    _, body = await api.call("GET", f"{R3}/{room}/event/{root}", token=a)
    # Spec: "the event with the lexicographically largest event_id is treated as more recent".
    assert body["unsigned"]["m.relations"]["m.replace"]["event_id"] == max(edits)


async def test_sync_bundles_aggregations_only_in_limited_timelines(api) -> None:
    """Spec, "Aggregations of child events": /sync bundles "when the relevant section has a
    limited value of true"; in a whole timeline the client sees the children themselves (Synapse
    does the same, and sliding sync follows /sync, MSC4186)."""
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    root = await send(api, a, room, text("root"))
    await send(api, b, room, thread(root, "reply"))
    sync_filter = json.dumps({"room": {"timeline": {"limit": 2}}})
    status, first = await api.call("GET", "/_matrix/client/v3/sync", query={"filter": sync_filter}, token=a)
    assert status == 200
    timeline = first["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True and timeline["events"][0]["event_id"] == root
    assert timeline["events"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 1

    root2 = await send(api, a, room, text("second root"))
    await send(api, b, room, thread(root2, "second reply"))
    status, incr = await api.call("GET", "/_matrix/client/v3/sync",
                                  query={"since": first["next_batch"], "timeout": "0"}, token=a)
    timeline = incr["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is False and [e["event_id"] for e in timeline["events"]][0] == root2
    assert "m.relations" not in timeline["events"][0]["unsigned"]

    ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
    body = {"room_subscriptions": {room: {"timeline_limit": 3, "required_state": []}}}
    status, sliding = await api.call("POST", ss, body, token=a)
    assert status == 200
    entry = sliding["rooms"][room]
    assert entry["limited"] is True and [e["content"]["body"] for e in entry["timeline"]] == [
        "reply", "second root", "second reply"]
    assert entry["timeline"][1]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    root3 = await send(api, a, room, text("third root"))
    await send(api, b, room, thread(root3, "third reply"))
    status, more = await api.call("POST", ss, body, token=a, query={"pos": sliding["pos"]})
    entry = more["rooms"][room]
    assert entry["limited"] is False and entry["timeline"][0]["event_id"] == root3
    assert "m.relations" not in entry["timeline"][0]["unsigned"]


async def test_a_duplicate_annotation_is_refused(api) -> None:
    """Spec, "Avoiding duplicate annotations": a second annotation with the same type and key on
    the same event from the same user is 400 M_DUPLICATE_ANNOTATION, unless the first is redacted;
    two sent at once do not both get through."""
    import asyncio
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    target = await send(api, a, room, text("lunch?"))
    like = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"}}
    first = await send(api, b, room, like, "m.reaction")
    status, err = await api.call("PUT", f"{R3}/{room}/send/m.reaction/again", like, token=b)
    assert (status, err["errcode"]) == (400, "M_DUPLICATE_ANNOTATION")
    await send(api, a, room, like, "m.reaction")                              # another user
    await send(api, b, room, {"m.relates_to": {**like["m.relates_to"], "key": "🍕"}}, "m.reaction")
    status, _ = await api.call("PUT", f"{R3}/{room}/redact/{first}/r1", {}, token=b)
    assert status == 200
    await send(api, b, room, like, "m.reaction")                              # the first is gone
    cake = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "🎂"}}
    results = await asyncio.gather(*(api.call("PUT", f"{R3}/{room}/send/m.reaction/cake{n}", cake, token=b)
                                     for n in range(3)))
    assert sorted(status for status, _ in results) == [200, 400, 400]
    _, page = await relations(api, a, room, f"{target}/m.annotation")
    keys = sorted((e["sender"], e["content"]["m.relates_to"]["key"]) for e in page["chunk"])
    assert keys == sorted([(ALICE, "👍"), (BOB, "👍"), (BOB, "🍕"), (BOB, "🎂")])


async def test_a_relation_names_an_event_of_its_own_room(api) -> None:
    """As Synapse: 400 for a relation to an event of another room, or to no event at all (so the
    answer tells nothing of other rooms either way); replies (m.in_reply_to) are not relations."""
    a, b = await api.tokens("alice", "bob")
    room = await public_room_with(api, a, b)
    other = await make_room(api, a)                           # bob is not in it
    secret = await send(api, a, other, text("elsewhere"))
    for parent in (secret, "$no-such-event"):
        for content, event_type in ((thread(parent, "hi"), "m.room.message"), (edit(parent, "x"), "m.room.message"),
                                    (reference(parent), "m.room.message"),
                                    ({"m.relates_to": {"rel_type": "m.annotation", "event_id": parent, "key": "👍"}},
                                     "m.reaction")):
            status, err = await api.call("PUT", f"{R3}/{room}/send/{event_type}/x{next(_txn)}", content, token=b)
            assert (status, err["errcode"]) == (400, "M_UNKNOWN"), (parent, content, err)
    reply = text("re", **{"m.relates_to": {"m.in_reply_to": {"event_id": secret}}})
    await send(api, b, room, reply)
    _, page = await relations(api, a, other, secret)
    assert page["chunk"] == []
    root = await send(api, a, room, text("root"))
    await send(api, b, room, thread(root, "in the thread"))
