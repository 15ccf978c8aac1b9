"""create_app(config): the Quart app with every blueprint, CORS, error handling and lifecycle."""
from __future__ import annotations

import logging
import time
from typing import Any, AsyncIterator, Callable

from quart import Quart, Response, request
from quart.routing import QuartRule

from pocketserver.client import search as search_client
from pocketserver.client import (account, account_data, devices, filter, login, membership, profile,
                                 registration, rooms, sync, versions)
from pocketserver.client import notifications, push_rules, pushers
from pocketserver.client import presence, receipts, tags, thirdparty, typing, user_directory, voip
from pocketserver.client import account_moderation, auth_fallback, openid
from pocketserver.client import peeking, relations, timestamp
from pocketserver.client import media
from pocketserver.client import directory, mutual_rooms, reporting, room_summary, room_upgrade
from pocketserver.client import key_backup, keys, to_device
from pocketserver.client import sliding_sync
from pocketserver.client import asgi
from pocketserver.config import Config
from pocketserver.discovery import landing
from pocketserver.errors import BadRequest, error_response, register_error_handlers
from pocketserver import metrics
from pocketserver.server import Server

log = logging.getLogger("pocketserver.access")

BLUEPRINTS = (versions.bp, search_client.bp, registration.bp, auth_fallback.bp, login.bp, account.bp, account_moderation.bp, devices.bp, profile.bp,
              keys.bp, to_device.bp, key_backup.bp,
              filter.bp, account_data.bp, tags.bp, user_directory.bp, thirdparty.bp, voip.bp, openid.bp,
              rooms.bp, peeking.bp, membership.bp, sync.bp, relations.bp, timestamp.bp, directory.bp, room_upgrade.bp,
              reporting.bp, room_summary.bp, mutual_rooms.bp, metrics.bp, landing.bp,
              typing.bp, receipts.bp, presence.bp,
              push_rules.bp, pushers.bp, notifications.bp, media.bp, sliding_sync.bp)

# Spec: client-server-api, "Web Browser Clients" (CORS headers on every response).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}
NO_STORE = "no-cache, no-store, must-revalidate"


def _lazy_builder(append_unknown: bool) -> Callable[..., tuple[str, str]]:
    """One builder shared by every rule: it compiles the rule's own on first use and keeps it there."""
    kept = "_built_unknown" if append_unknown else "_built"

    def build(rule: QuartRule, /, **values: Any) -> tuple[str, str]:
        compiled = rule.__dict__.get(kept)
        if compiled is None:
            compiled = QuartRule._compile_builder(rule, append_unknown)
            setattr(rule, kept, compiled)
        return compiled(rule, **values)
    return build


_LAZY_BUILDERS = {False: _lazy_builder(False), True: _lazy_builder(True)}


class LazyBuilderRule(QuartRule):
    """A URL rule that compiles its URL builders on first use, not when it is added.

    Werkzeug compiles two builder functions (for url_for) per rule as it is added: measured ~30 ms
    of every start over our ~150 routes, for URLs this server never builds. Matching is unchanged.
    The two stand-ins are shared by all rules (a closure per rule held ~85 KiB).
    """

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        return _LAZY_BUILDERS[append_unknown]


def create_app(config: Config, server: Server | None = None) -> Quart:
    """Build the app for `config`; the Server starts and stops with the app's serving."""
    app = Quart("pocketserver", static_folder=None)
    app.url_rule_class = LazyBuilderRule
    app.request_class = asgi.Request          # (the media blueprint refines both for uploads)
    app.asgi_http_class = asgi.HTTPConnection
    # `/state/{type}/` (empty state key) must match without a redirect.
    app.url_map.strict_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    the_server = server or Server(config)
    app.config["POCKETSERVER"] = the_server
    register_error_handlers(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)

    @app.while_serving
    async def lifecycle() -> AsyncIterator[None]:
        await the_server.start()
        yield
        await the_server.stop()

    @app.before_request
    async def _start_timer() -> Response | None:
        request.started = the_server.request_started()  # type: ignore[attr-defined]
        if "Transfer-Encoding" in request.headers and "Content-Length" in request.headers:
            # RFC 9112, 6.1: the server MUST close the connection after answering such a request (a
            # proxy that framed it by Content-Length could have hidden a second request in it).
            response = error_response(BadRequest("Both Content-Length and Transfer-Encoding"))
            response.headers["Connection"] = "close"
            return response
        return None

    @app.after_request
    async def _finish(response: Response) -> Response:
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)
        # Answers hold tokens, TURN credentials and messages: no cache keeps them (Synapse's
        # default too). Media and pages set their own.
        response.headers.setdefault("Cache-Control", NO_STORE)
        if log.isEnabledFor(logging.INFO):
            elapsed = time.perf_counter() - getattr(request, "started", time.perf_counter())
            # request.path never holds the query string, so access tokens are not logged.
            log.info("%s %s %s %d %.1fms", request.remote_addr, request.method, request.path,
                     response.status_code, elapsed * 1000)
        return response

    return app
