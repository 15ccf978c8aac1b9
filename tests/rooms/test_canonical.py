"""Canonical JSON: the appendix examples and the strict rules of room versions 6+."""
from __future__ import annotations

import json

import canonicaljson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pocketserver.rooms import canonical
from pocketserver.rooms.canonical import (
    CanonicalJsonError, check_strict_canonical_json, encode_canonical_json, is_strict_canonical_json,
)

APPENDIX_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        '{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",'
        ' "three_pids": [{"medium": "email", "address": "john.doe@example.org"},'
        ' {"medium": "msisdn", "address": "123456789"}]}}}',
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
        '[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
        '"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given", "expected"), APPENDIX_EXAMPLES)
def test_appendix_examples(given: str, expected: str) -> None:
    """appendices, "Canonical JSON" ("Examples")."""
    assert encode_canonical_json(json.loads(given)) == expected.encode("utf-8")


def test_control_characters_are_escaped() -> None:
    """appendices, "Canonical JSON" ("Grammar"): control characters use short or \\u00XX escapes."""
    assert encode_canonical_json({"a": "\n\t\x01\"\\"}) == b'{"a":"\\n\\t\\u0001\\"\\\\"}'


@pytest.mark.parametrize("value", [0, 2**53 - 1, -(2**53) + 1, {"a": [1, "x", None, True, {"b": False}]}])
def test_strict_accepts(value: object) -> None:
    """rooms/v6, "Canonical JSON": integers in [-(2**53)+1, 2**53-1] are allowed."""
    check_strict_canonical_json(value)  # type: ignore[arg-type]
    assert is_strict_canonical_json(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [2**53, -(2**53), 1.5, 10.0, {"a": {"b": [2**60]}}, {"a": float("nan")}])
def test_strict_rejects(value: object) -> None:
    """rooms/v6, "Canonical JSON": no floats and no integers outside the safe range."""
    with pytest.raises(CanonicalJsonError):
        check_strict_canonical_json(value)  # type: ignore[arg-type]
    assert not is_strict_canonical_json(value)  # type: ignore[arg-type]


def test_strict_error_names_the_path() -> None:
    """The error says where the bad value is."""
    with pytest.raises(CanonicalJsonError, match=r"\.content\.n\[1\]"):
        check_strict_canonical_json({"content": {"n": [1, 0.5]}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1.0, -0.0, 1e16, 1e22, 2.5, 1e-7])
    | st.text() | st.sampled_from(["v1.0", "e+", "1e+16", "ok"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_the_single_encoding_path_matches_normalising_first(value: object) -> None:
    """Output that holds neither ".0" nor "e+" is taken as is; it must equal what normalising every
    integral float to an integer first gives (appendices, "Canonical JSON")."""
    expected = canonicaljson.encode_canonical_json(canonical._normalise_numbers(value))
    assert encode_canonical_json(value) == expected


def test_integral_floats_are_written_as_integers() -> None:
    assert encode_canonical_json({"a": 1.0, "b": -0.0, "c": 1e16, "d": [2.5, 3.0]}) == \
        b'{"a":1,"b":0,"c":10000000000000000,"d":[2.5,3]}'
    assert encode_canonical_json({"version": "v1.0", "n": 7}) == b'{"n":7,"version":"v1.0"}'


def test_other_mappings_and_tuples_are_encoded_like_dicts_and_lists() -> None:
    from types import MappingProxyType
    assert encode_canonical_json(MappingProxyType({"b": (1, 2.0), "a": MappingProxyType({})})) == b'{"a":{},"b":[1,2]}'
