"""GET /: a small HTML page telling a person with a browser which URL to put into their client.

It shows the server name, the client URL and the LAN discovery name: all of it public (the
same facts the mDNS TXT record carries), nothing secret. Every value is HTML-escaped, and a
strict Content-Security-Policy allows only the page's own inline style, by hash.
"""
from __future__ import annotations

import html

from quart import Blueprint, Response

from pocketserver import __version__
from pocketserver.discovery.announce import client_url, instance_name
from pocketserver.html_page import csp_hash, html_response
from pocketserver.server import current_server

bp = Blueprint("landing", __name__)

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;"
          "line-height:1.5;color:#222}code{background:#eee;padding:.1rem .3rem;border-radius:.2rem;"
          "user-select:all}dt{font-weight:bold;margin-top:.8rem}")
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src {csp_hash(_STYLE)}; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")

_BODY = """<h1>{server_name}</h1>
<p>This is a <a href="https://matrix.org/">Matrix</a> homeserver (pocketserver {version}).
To chat, open a Matrix client such as Element and use this homeserver URL:</p>
<p><code>{client_url}</code></p>
<dl>
<dt>Server name</dt><dd>{server_name} (user IDs look like <code>@alice:{server_name}</code>)</dd>
<dt>On the local network</dt><dd>{discovery}</dd>
</dl>"""


@bp.get("/")
async def get_landing_page() -> Response:
    """The landing page for people who open the server's URL in a web browser."""
    server = current_server()
    config = server.config
    if server.announcer is not None and server.announcer.announced:
        discovery = f"announced as \u201c{server.announcer.name}\u201d (find it with pocketserver discover)"
    elif config.lan_discovery:
        discovery = f"\u201c{instance_name(config)}\u201d (not announced right now)"
    else:
        discovery = "not announced (LAN discovery is off)"
    server_name = html.escape(config.server_name)
    body = _BODY.format(version=html.escape(__version__), server_name=server_name,
                        client_url=html.escape(client_url(config)), discovery=html.escape(discovery))
    return html_response(title=f"{server_name} - pocketserver", style=_STYLE, body=body,
                         policy=CONTENT_SECURITY_POLICY)
