"""The fallback web page for a registration token: for clients that cannot ask for one themselves.

A client that does not know a stage opens `/_matrix/client/v3/auth/<type>/fallback/web?session=`
in a browser; the page does the stage, then tells the client (`onAuthDone` or an "authDone"
message), which resubmits its request with the session alone. Of the stages offered here only the
registration token needs a person's input, and it is the only fallback Synapse serves for them.
Spec: client-server-api, "User-interactive authentication API", "Fallback".

Every value is HTML-escaped, and the Content-Security-Policy admits only the page's own style and
script, by hash.
"""
from __future__ import annotations

import html

from quart import Blueprint, Response, request

from pocketserver.errors import LimitExceeded, MatrixError, Unrecognized
from pocketserver.html_page import csp_hash, html_response
from pocketserver.server import current_server

bp = Blueprint("auth_fallback", __name__)

TOKEN_STAGE = "m.login.registration_token"     # (accounts.registration is imported on first use only)

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem;"
          "line-height:1.5;color:#222}input{font-size:1rem;padding:.3rem}.error{color:#b00}")
# The spec's notification, word for word: an embedded browser's hook, else the opener window.
_DONE_SCRIPT = ('if (window.onAuthDone) { window.onAuthDone(); } '
                'else if (window.opener && window.opener.postMessage) { window.opener.postMessage("authDone", "*"); }')
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src {csp_hash(_STYLE)}; "
                           f"script-src {csp_hash(_DONE_SCRIPT)}; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")

_FORM = """<h1>Sign up on {server_name}</h1>
<p>This server asks for a registration token. Enter the one you were given.</p>
{error}<form method="post">
<input type="hidden" name="session" value="{session}">
<input type="text" name="token" autocomplete="off" autofocus required maxlength="64" aria-label="Registration token">
<input type="submit" value="Continue">
</form>"""

_DONE = """<h1>Thank you</h1>
<p>You may now close this window and return to the application.</p>
<script>{script}</script>"""


def _server_name() -> str:
    return html.escape(current_server().config.server_name)


def _page(body: str, status: int = 200) -> Response:
    return html_response(title=f"Registration token - {_server_name()}", style=_STYLE, body=body,
                         policy=CONTENT_SECURITY_POLICY, status=status, cache="no-store")


def _form(session: str, error: str = "", status: int = 200) -> Response:
    shown = f'<p class="error">{html.escape(error)}</p>\n' if error else ""
    return _page(_FORM.format(session=html.escape(session), error=shown, server_name=_server_name()), status)


def _require_token_stage(stage: str) -> None:
    if stage != TOKEN_STAGE:
        raise Unrecognized(f"No fallback page for the authentication type {stage!r}")


@bp.get("/_matrix/client/v3/auth/<stage>/fallback/web")
async def get_fallback_page(stage: str) -> Response:
    """The stage's form. Spec: client-server-api, "Fallback"."""
    _require_token_stage(stage)
    session = request.args.get("session")
    if not session:
        return _page('<p class="error">No session given: start again from your app.</p>', 400)
    return _form(session)


@bp.post("/_matrix/client/v3/auth/<stage>/fallback/web")
async def submit_fallback_page(stage: str) -> Response:
    """Check the token and mark the stage done in the session, or show the form again."""
    _require_token_stage(stage)
    form = await request.form
    session, token = form.get("session", ""), form.get("token", "")
    if not session:
        return _page('<p class="error">No session given: start again from your app.</p>', 400)
    registration = current_server().registration
    try:
        registration.spend_token_check(request.remote_addr or "")
        await registration.complete_token_stage(session, token)
    except LimitExceeded as err:
        seconds = -(-int(err.extra.get("retry_after_ms", 1000)) // 1000)
        return _form(session, f"Too many attempts: try again in {seconds} s.", 429)
    except MatrixError as err:
        if err.errcode == "M_UNAUTHORIZED":        # a wrong token: let the person try again
            return _form(session, "That registration token is not valid.")
        return _page(f'<p class="error">{html.escape(err.message)}: start again from your app.</p>', err.status)
    return _page(_DONE.format(script=_DONE_SCRIPT))
