"""The few HTML pages the server shows a person with a browser (the landing page, the
registration token's fallback page): one document shape and one set of strict headers.

Callers escape every value they put in; the Content-Security-Policy each passes admits only its
own inline style and script, by hash.
"""
from __future__ import annotations

import base64
import hashlib

from quart import Response

_DOCUMENT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""


def csp_hash(source: str) -> str:
    """The CSP source expression admitting exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def html_response(*, title: str, style: str, body: str, policy: str, status: int = 200,
                  cache: str = "no-cache") -> Response:
    page = _DOCUMENT.format(title=title, style=style, body=body)
    return Response(page, status=status, content_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": cache,
    })
