"""The user directory: which users a search term finds, and in what order.

A user matches when every word of the term starts one of the words of their user ID or display
name, ignoring case (so "ali smi", "@alice" and "alice:example.org" all find @alice.smith:example.org).
Spec: client-server-api, "POST /_matrix/client/v3/user_directory/search".
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable

from pocketserver.storage.user_directory import DirectoryUser

DEFAULT_LIMIT = 10        # spec: "Defaults to 10."
MAX_LIMIT = 100
MAX_TERMS = 20

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    """Words compared case- and form-blind: NFKC makes a decomposed "é" and full-width letters the
    characters they stand for, as Synapse's directory index does (_filter_text_for_index)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _matches(terms: list[str], user: DirectoryUser) -> bool:
    words = _words(user.user_id) + _words(user.display_name or "")
    return all(any(word.startswith(term) for word in words) for term in terms)


def _rank(whole: str, user: DirectoryUser) -> tuple[Any, ...]:
    """Exact names first, then people the searcher shares a room with, then those with a profile."""
    localpart = user.user_id[1:].split(":", 1)[0].casefold()
    name = (user.display_name or "").casefold()
    exact = whole in (name, localpart, user.user_id.casefold())
    return (not exact, not user.shares_room, user.display_name is None, user.avatar_url is None,
            name or localpart, user.user_id)


def search(users: Iterable[DirectoryUser], search_term: str, limit: int) -> dict[str, Any]:
    """The response body: up to `limit` matching users, best first, and whether more matched."""
    terms = _words(search_term)[:MAX_TERMS]
    found = [u for u in users if terms and _matches(terms, u)]
    whole = search_term.strip().casefold()
    found.sort(key=lambda u: _rank(whole, u))
    results = []
    for user in found[:limit]:
        entry: dict[str, Any] = {"user_id": user.user_id}
        if user.display_name is not None:
            entry["display_name"] = user.display_name
        if user.avatar_url is not None:
            entry["avatar_url"] = user.avatar_url
        results.append(entry)
    return {"results": results, "limited": len(found) > limit}
