"""Which key a claim returns, and parsing of /keys/upload and /keys/claim bodies.

Spec: client-server-api, "One-time and fallback keys", "POST /_matrix/client/v3/keys/claim",
"POST /_matrix/client/v3/keys/upload".
"""
from __future__ import annotations

import pytest

from pocketserver.e2ee.one_time_keys import (UploadedKey, choose_claimed_key, parse_claim_request,
                                             parse_uploaded_keys, with_default_count)
from pocketserver.errors import BadJson, InvalidParam
from pocketserver.storage.e2ee import ClaimedKey

ALG = "signed_curve25519"
ONE_TIME = ClaimedKey(f"{ALG}:AAAA", {"key": "otk"})
FALLBACK = ("FFFF", {"key": "fb", "fallback": True})


def test_one_time_key_wins_over_fallback() -> None:
    assert choose_claimed_key(ONE_TIME, (*FALLBACK, False), ALG) == (ONE_TIME, False)


def test_fallback_when_no_one_time_key_marks_it_used() -> None:
    chosen, mark_used = choose_claimed_key(None, (*FALLBACK, False), ALG)
    assert chosen == ClaimedKey(f"{ALG}:FFFF", FALLBACK[1]) and mark_used


def test_used_fallback_is_still_returned() -> None:
    chosen, mark_used = choose_claimed_key(None, (*FALLBACK, True), ALG)
    assert chosen == ClaimedKey(f"{ALG}:FFFF", FALLBACK[1]) and not mark_used


def test_nothing_to_claim() -> None:
    assert choose_claimed_key(None, None, ALG) == (None, False)


def test_parse_claim_request_skips_user_ids_of_bad_grammar() -> None:
    claims, failures = parse_claim_request({"one_time_keys": {"a": {"D": ALG}, "@alice:here": {"D": ALG}}}, "here")
    assert (claims, failures) == ([("@alice:here", "D", ALG)], {})


def test_parse_claim_request_splits_local_and_remote() -> None:
    claims, failures = parse_claim_request({"one_time_keys": {
        "@alice:here": {"DEV1": ALG, "DEV2": ALG}, "@bob:there": {"X": ALG}}}, "here")
    assert claims == [("@alice:here", "DEV1", ALG), ("@alice:here", "DEV2", ALG)]
    assert set(failures) == {"there"}


@pytest.mark.parametrize("body", [{}, {"one_time_keys": []}, {"one_time_keys": {"@a:here": []}},
                                  {"one_time_keys": {"@a:here": {"D": ""}}}])
def test_parse_claim_request_refuses_bad_bodies(body: dict) -> None:
    with pytest.raises((BadJson, InvalidParam)):
        parse_claim_request(body, "here")


def test_parse_uploaded_keys() -> None:
    assert parse_uploaded_keys(None, "one_time_keys") == []
    keys = parse_uploaded_keys({"signed_curve25519:AAAA": {"key": "k"}, "curve25519:B:C": "raw"}, "one_time_keys")
    assert keys == [UploadedKey(ALG, "AAAA", {"key": "k"}), UploadedKey("curve25519", "B:C", "raw")]
    assert keys[0].full_id == "signed_curve25519:AAAA"
    for bad in ([], {"nocolon": "k"}, {":x": "k"}, {"a:": "k"}, {"a:b": 1}):
        with pytest.raises(BadJson):
            parse_uploaded_keys(bad, "one_time_keys")


def test_counts_always_name_signed_curve25519() -> None:
    assert with_default_count({}) == {ALG: 0}
    assert with_default_count({ALG: 3, "curve25519": 1}) == {ALG: 3, "curve25519": 1}
