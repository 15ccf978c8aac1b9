"""Canonical JSON encoding and the strict checks that room versions 6 and later enforce.

Spec: appendices, "Canonical JSON"; rooms/v6, "Canonical JSON".
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Union

import canonicaljson

JsonValue = Union[None, bool, int, float, str, Sequence["JsonValue"], Mapping[str, "JsonValue"]]
JsonDict = Mapping[str, JsonValue]

MIN_SAFE_INTEGER = -(2**53) + 1
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalJsonError(ValueError):
    """A value breaks the strict canonical JSON rules."""


def copy_json(value: Any) -> Any:
    """A deep copy of plain JSON data (objects, arrays, scalars); several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [copy_json(v) for v in value]
    return value


def _normalise_numbers(value: Any) -> Any:
    """Return `value` with integral floats (e.g. a parsed `1e10` or `-0.0`) turned into ints.

    Spec: appendices, "Canonical JSON" (the `{"a": -0, "b": 1e10}` example).
    """
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise_numbers(v) for v in value]
    return value


def encode_canonical_json(value: JsonValue) -> bytes:
    """Encode a JSON value as canonical JSON bytes: UTF-8, sorted keys, no insignificant whitespace.

    Integral floats must come out as integers. Python writes every finite integral float with
    ".0" (`1.0`, `-0.0`) or, from 1e16 up, with "e+" (`1e+16`), so output without either has
    none and is final. Otherwise (a float, or merely a string holding ".0" or "e+") the value is
    normalised and encoded again. Most events have neither: one encoding instead of a rebuilt
    copy and an encoding, ~8 instead of ~17 µs for a message event.

    Spec: appendices, "Canonical JSON".
    """
    try:
        encoded = canonicaljson.encode_canonical_json(value)
        if b".0" not in encoded and b"e+" not in encoded:
            return encoded
    except TypeError:            # a Mapping that is not a dict: normalising turns it into one
        pass
    return canonicaljson.encode_canonical_json(_normalise_numbers(value))


def check_strict_canonical_json(value: JsonValue, path: str = "") -> None:
    """Raise CanonicalJsonError if the value holds a float or an integer outside [-(2**53)+1, 2**53-1].

    Spec: rooms/v6, "Canonical JSON"; appendices, "Canonical JSON".
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"integer out of range at {path or '.'}")
        return
    if isinstance(value, float):
        raise CanonicalJsonError(f"float not allowed at {path or '.'}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"non-string key at {path or '.'}")
            check_strict_canonical_json(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_strict_canonical_json(item, f"{path}[{index}]")
        return
    raise CanonicalJsonError(f"not a JSON value at {path or '.'}: {type(value).__name__}")


def is_strict_canonical_json(value: JsonValue) -> bool:
    """Whether the value obeys the strict canonical JSON rules.

    Spec: rooms/v6, "Canonical JSON".
    """
    try:
        check_strict_canonical_json(value)
    except CanonicalJsonError:
        return False
    return True
