"""User directory matching and ranking, without a server.

Spec: client-server-api, "POST /_matrix/client/v3/user_directory/search" (case-insensitive on
user IDs and display names).
"""
from __future__ import annotations

from pocketserver.accounts.user_directory import search
from pocketserver.storage.user_directory import DirectoryUser

ALICE = DirectoryUser("@alice.smith:example.org", "Alice Smith", "mxc://example.org/a", False)
ALI = DirectoryUser("@ali:example.org", None, None, False)
BOB = DirectoryUser("@bob:example.org", "Bobby Tables", None, True)
ZOE = DirectoryUser("@zoe:example.org", "Zoë Ålander", None, False)
USERS = [ALICE, ALI, BOB, ZOE]


def ids(body: dict) -> list[str]:
    return [r["user_id"] for r in body["results"]]


def test_every_word_must_start_a_word_of_the_id_or_name() -> None:
    assert ids(search(USERS, "ali", 10)) == ["@ali:example.org", "@alice.smith:example.org"]
    assert ids(search(USERS, "ALI SMI", 10)) == ["@alice.smith:example.org"]
    assert ids(search(USERS, "smith alice", 10)) == ["@alice.smith:example.org"]
    assert ids(search(USERS, "@alice.smith:example.org", 10)) == ["@alice.smith:example.org"]
    assert ids(search(USERS, "tables", 10)) == ["@bob:example.org"]
    assert ids(search(USERS, "mith", 10)) == []            # inside a word, not at its start
    assert ids(search(USERS, "alice bob", 10)) == []       # every word must match the same user


def test_case_is_ignored_beyond_ascii() -> None:
    assert ids(search(USERS, "zoë", 10)) == ["@zoe:example.org"]
    assert ids(search(USERS, "ÅLANDER", 10)) == ["@zoe:example.org"]


def test_a_term_without_words_finds_nobody() -> None:
    assert search(USERS, "", 10) == {"results": [], "limited": False}
    assert search(USERS, " @:! ", 10) == {"results": [], "limited": False}


def test_order_exact_then_shared_rooms_then_profiles() -> None:
    users = [DirectoryUser("@example:example.org", None, None, False), *USERS]
    # "example" starts a word of every user ID; bob shares a room, alice has a full profile.
    assert ids(search(users, "example", 10)) == [
        "@example:example.org",               # the localpart is the whole term
        "@bob:example.org",                   # shares a room with the searcher
        "@alice.smith:example.org",           # display name and avatar
        "@zoe:example.org",                   # display name
        "@ali:example.org",                   # nothing
    ]


def test_fields_and_limit() -> None:
    body = search(USERS, "example", 2)
    assert body["limited"] is True and len(body["results"]) == 2
    assert body["results"][0] == {"user_id": "@bob:example.org", "display_name": "Bobby Tables"}
    assert search(USERS, "alice", 10)["results"] == [
        {"user_id": "@alice.smith:example.org", "display_name": "Alice Smith", "avatar_url": "mxc://example.org/a"}]
    assert search(USERS, "alice", 1)["limited"] is False
    assert search(USERS, "alice", 0) == {"results": [], "limited": True}
