"""Reading request bodies as JSON objects, and integer query parameters, with the spec's errors
for bad input.

Spec: client-server-api, "API Standards" (M_NOT_JSON, M_BAD_JSON, M_INVALID_PARAM).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from quart import request

from pocketserver.errors import BadJson, InvalidParam, NotJson

MAX_NESTING = 100
MAX_NUMBER_CHARS = 400   # far beyond any integer or float a Matrix API takes
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _NumberOutOfRange(ValueError):
    """A number literal that is valid JSON but no usable number (1e400, a 5000-digit integer)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NumberOutOfRange(literal)
    return value


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _NumberOutOfRange(literal)
    return int(literal)


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse `raw` as one JSON object; NaN, Infinity, bad UTF-8 and deep nesting are refused.

    Valid JSON that no Matrix API can use is M_BAD_JSON: numbers out of range (1e400, which
    Python would read as inf, or integers of hundreds of digits) and `\\ud800`-style lone
    surrogates, which cannot be stored or sent back as UTF-8. Duplicate keys: the last wins,
    as in Synapse.
    """
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float,
                           parse_int=_parse_int) if text.strip() else None
    except _NumberOutOfRange:
        raise BadJson("Number out of range.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise NotJson("Content not JSON.") from None
    if value is None and not raw.strip():
        raise NotJson("Content not JSON.")
    if not isinstance(value, dict):
        raise BadJson("Content must be a JSON object.")
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise BadJson("JSON is nested too deeply.")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise BadJson("Strings must be valid Unicode (lone surrogate escape).")
    return value


async def json_object_body(*, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body gives {} when `empty_ok`."""
    raw = await request.get_data(cache=True)
    if empty_ok and not raw.strip():
        return {}
    return parse_json_object(raw)


def int_arg(name: str, default: int, low: int = 0, high: int = 1000) -> int:
    """An integer query parameter: below `low` is refused, above `high` capped, as Synapse's parse_integer."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam(f"{name} must be an integer") from None
    if value < low:
        raise InvalidParam(f"{name} must be at least {low}")
    return min(value, high)
