"""Reading request bodies as JSON objects, with the spec's errors for bad input.

Spec: client-server-api, "API Standards" (M_NOT_JSON, M_BAD_JSON).
"""
from __future__ import annotations

import json
from typing import Any

from quart import request

from pocketserver.errors import BadJson, NotJson

MAX_NESTING = 100


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
    """Parse `raw` as one JSON object; NaN, Infinity, bad UTF-8 and deep nesting are refused."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant) if text.strip() else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise NotJson("Content not JSON.") from None
    if value is None and not raw.strip():
        raise NotJson("Content not JSON.")
    if not isinstance(value, dict):
        raise BadJson("Content must be a JSON object.")
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise BadJson("JSON is nested too deeply.")
    return value


async def json_object_body(*, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body gives {} when `empty_ok`."""
    raw = await request.get_data(cache=True)
    if empty_ok and not raw.strip():
        return {}
    return parse_json_object(raw)
