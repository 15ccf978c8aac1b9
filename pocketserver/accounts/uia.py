"""User-interactive authentication: sessions, flows and stage checks.

Sessions live in memory (a restart only makes a client start its flow again).
Spec: client-server-api, "User-interactive authentication API".
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pocketserver.errors import BadJson, LimitExceeded, MatrixError, Unauthorized

SESSION_LIFETIME_S = 30 * 60
MAX_SESSIONS = 10_000

# Checks one stage: receives the stage type and the client's `auth` dict, returns a value to
# remember for the session (e.g. the registration token used) or raises a MatrixError.
StageCheck = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


@dataclass(slots=True)
class UiaSession:
    session_id: str
    operation: str                       # the endpoint this session authorises
    user_id: str | None                  # the user it is bound to, when authenticated
    created: float
    completed: dict[str, Any] = field(default_factory=dict)   # stage type -> its check's result


class UserInteractiveAuth:
    """Runs UIA flows for registration, password change, deactivation and device deletion."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, UiaSession] = {}
        self._clock = clock

    def _new_session(self, operation: str, user_id: str | None) -> UiaSession:
        now = self._clock()
        if len(self._sessions) >= MAX_SESSIONS:
            self._expire(now)
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.created)
            del self._sessions[oldest.session_id]
        session = UiaSession(secrets.token_urlsafe(18), operation, user_id, now)
        self._sessions[session.session_id] = session
        return session

    def _expire(self, now: float) -> None:
        for sid in [s for s, v in self._sessions.items() if now - v.created > SESSION_LIFETIME_S]:
            del self._sessions[sid]

    @staticmethod
    def _challenge(session: UiaSession, flows: Sequence[Sequence[str]],
                   params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"flows": [{"stages": list(f)} for f in flows],
                                "params": dict(params), "session": session.session_id}
        if session.completed:
            body["completed"] = list(session.completed)
        return body

    async def authenticate(self, auth: Any, flows: Sequence[Sequence[str]], check: StageCheck, *,
                           operation: str, user_id: str | None = None,
                           params: Mapping[str, Any] | None = None) -> UiaSession:
        """Advance the flow with the client's `auth` dict; return the session once a flow is done.

        Raises Unauthorized (401) with the challenge while stages remain, and with the error
        when a stage fails.
        """
        params = params or {}
        if auth is not None and not isinstance(auth, dict):
            raise BadJson("auth must be an object")
        session: UiaSession | None = None
        if auth and "session" in auth:
            sid = auth["session"]
            session = self._sessions.get(sid) if isinstance(sid, str) else None
            now = self._clock()
            if session is not None and now - session.created > SESSION_LIFETIME_S:
                del self._sessions[session.session_id]
                session = None
            if session is None or session.operation != operation or session.user_id != user_id:
                raise Unauthorized({"flows": [{"stages": list(f)} for f in flows], "params": dict(params)},
                                   _UnknownSession("Unknown or expired session"))
        if session is None:
            session = self._new_session(operation, user_id)
        stage = auth.get("type") if auth else None
        if stage is not None:
            allowed = {s for f in flows for s in f}
            if not isinstance(stage, str) or stage not in allowed:
                raise Unauthorized(self._challenge(session, flows, params),
                                   BadJson(f"Unsupported authentication type {stage!r}"))
            try:
                session.completed[stage] = await check(stage, auth)
            except LimitExceeded:
                raise       # 429 with retry_after_ms, as Synapse answers, not a 401 challenge
            except MatrixError as err:
                raise Unauthorized(self._challenge(session, flows, params), err) from None
        if any(all(s in session.completed for s in f) for f in flows):
            self._sessions.pop(session.session_id, None)
            return session
        raise Unauthorized(self._challenge(session, flows, params))


    async def complete_stage(self, session_id: str, operation: str, stage: str, check: StageCheck,
                             auth: Mapping[str, Any]) -> None:
        """Complete one stage of an existing session out of band (the stage's fallback web page).

        The client then resubmits its request with the session alone, which finds the stage done.
        Spec: client-server-api, "Fallback".
        """
        session = self._sessions.get(session_id)
        if session is not None and self._clock() - session.created > SESSION_LIFETIME_S:
            del self._sessions[session_id]
            session = None
        if session is None or session.operation != operation:
            raise _UnknownSession("Unknown or expired session")
        session.completed[stage] = await check(stage, auth)


class _UnknownSession(MatrixError):
    errcode, status = "M_UNKNOWN", 400
