"""The MatrixError family and the app-wide error handlers.

Spec: client-server-api, "Standard error response".
"""
from __future__ import annotations

import errno
import logging
import sqlite3
from typing import Any, ClassVar

from quart import Quart, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class MatrixError(Exception):
    """An error with a Matrix errcode and the HTTP status it is sent with."""

    errcode: ClassVar[str] = "M_UNKNOWN"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}


class BadRequest(MatrixError):
    errcode, status = "M_UNKNOWN", 400


class Forbidden(MatrixError):
    errcode, status = "M_FORBIDDEN", 403


class BadState(MatrixError):
    """Spec: client-server-api, "Other error codes" (M_BAD_STATE: e.g. unbanning a user who is not banned)."""
    errcode, status = "M_BAD_STATE", 403


class NotFound(MatrixError):
    errcode, status = "M_NOT_FOUND", 404


class Unrecognized(MatrixError):
    errcode, status = "M_UNRECOGNIZED", 404


class MethodNotAllowed(MatrixError):
    errcode, status = "M_UNRECOGNIZED", 405


class NotJson(MatrixError):
    errcode, status = "M_NOT_JSON", 400


class BadJson(MatrixError):
    errcode, status = "M_BAD_JSON", 400


class MissingParam(MatrixError):
    errcode, status = "M_MISSING_PARAM", 400


class InvalidParam(MatrixError):
    errcode, status = "M_INVALID_PARAM", 400


class TooLarge(MatrixError):
    errcode, status = "M_TOO_LARGE", 413


class MissingToken(MatrixError):
    errcode, status = "M_MISSING_TOKEN", 401


class UnknownToken(MatrixError):
    errcode, status = "M_UNKNOWN_TOKEN", 401


class UserInUse(MatrixError):
    errcode, status = "M_USER_IN_USE", 400


class InvalidUsername(MatrixError):
    errcode, status = "M_INVALID_USERNAME", 400


class WeakPassword(MatrixError):
    errcode, status = "M_WEAK_PASSWORD", 400


class UserDeactivated(MatrixError):
    errcode, status = "M_USER_DEACTIVATED", 403


class UserLocked(MatrixError):
    """Spec: client-server-api, "Account locking": 401 with soft_logout, so clients keep their session."""

    errcode, status = "M_USER_LOCKED", 401

    def __init__(self, message: str = "This account has been locked") -> None:
        super().__init__(message, soft_logout=True)


class UserSuspended(MatrixError):
    """Spec: client-server-api, "Account suspension"."""

    errcode, status = "M_USER_SUSPENDED", 403


class GuestAccessForbidden(MatrixError):
    errcode, status = "M_GUEST_ACCESS_FORBIDDEN", 403


class LimitExceeded(MatrixError):
    errcode, status = "M_LIMIT_EXCEEDED", 429


class ProfileTooLarge(MatrixError):
    errcode, status = "M_PROFILE_TOO_LARGE", 400


class KeyTooLarge(MatrixError):
    errcode, status = "M_KEY_TOO_LARGE", 400


class ResourceLimitExceeded(MatrixError):
    errcode, status = "M_RESOURCE_LIMIT_EXCEEDED", 503


class Unauthorized(MatrixError):
    """A user-interactive-auth challenge; the body carries flows, params and session.

    Spec: client-server-api, "User-interactive authentication API".
    """

    errcode, status = "M_FORBIDDEN", 401

    def __init__(self, challenge: dict[str, Any], error: MatrixError | None = None) -> None:
        super().__init__(error.message if error else "Additional authentication is required")
        self.challenge = challenge
        self.error = error

    def body(self) -> dict[str, Any]:
        if self.error is None:
            return dict(self.challenge)
        return {**self.challenge, "errcode": self.error.errcode, "error": self.error.message}


# What the disk's refusal means, and what the admin has to do about it.
_FULL = ("the server's disk is full", "freed space")
_READ_ONLY = ("the server's storage is read-only", "made it writable again")
_FAILED = ("the server's storage failed", "checked the disk")
# SQLite primary result codes that mean the disk, not the request, is at fault.
_SQLITE_STORAGE_CODES = {13: _FULL,          # SQLITE_FULL
                         8: _READ_ONLY,      # SQLITE_READONLY
                         10: _FAILED,        # SQLITE_IOERR
                         14: _FAILED}        # SQLITE_CANTOPEN
_OS_STORAGE_ERRNOS = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EROFS: _READ_ONLY, errno.EIO: _FAILED}


def storage_failure_reason(err: BaseException) -> tuple[str, str] | None:
    """(what is wrong, what the admin must do) when `err` is the disk refusing a write, else None."""
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        found = _SQLITE_STORAGE_CODES.get(code & 0xFF) if isinstance(code, int) else None
        if found is None and "database or disk is full" in str(err):
            found = _FULL
        return found
    if isinstance(err, OSError):
        return _OS_STORAGE_ERRNOS.get(err.errno or 0)
    return None


def storage_failure(err: BaseException) -> ResourceLimitExceeded | None:
    """The Matrix error for a write the disk refused (full, read-only, I/O error), else None.

    Reads keep working in that state, so only requests that write get it. Spec:
    client-server-api, "Standard error response" (M_RESOURCE_LIMIT_EXCEEDED, with admin_contact).
    """
    found = storage_failure_reason(err)
    if found is None:
        return None
    reason, remedy = found
    server = current_app.config.get("POCKETSERVER") if current_app else None
    contact = server.config.admin_contact_uri() if server is not None else ""
    return ResourceLimitExceeded(f"Cannot store this now: {reason}. Reading still works; "
                                 f"try again after the server's admin has {remedy}.", admin_contact=contact)


def error_response(err: MatrixError) -> Response:
    """Render a MatrixError as its JSON body with its status."""
    resp = jsonify(err.body())
    resp.status_code = err.status
    if isinstance(err, LimitExceeded) and "retry_after_ms" in err.extra:
        resp.headers["Retry-After"] = str(max(1, -(-int(err.extra["retry_after_ms"]) // 1000)))
    return resp


def register_error_handlers(app: Quart) -> None:
    """Install the handlers that turn every failure into a Matrix error body."""

    @app.errorhandler(MatrixError)
    async def _matrix_error(err: MatrixError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        if code == 404:
            mapped: MatrixError = Unrecognized("Unrecognized request")
        elif code == 405:
            mapped = MethodNotAllowed("Unrecognized request")
        elif code == 413:
            mapped = TooLarge("Request body too large")
        elif code < 500:
            resp = jsonify(BadRequest(err.description or "Bad request").body())
            resp.status_code = code
            return resp
        else:
            log.error("HTTP %s: %s", code, err.description)
            mapped = MatrixError("Internal server error")
        return error_response(mapped)

    @app.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        refused = storage_failure(err)
        if refused is not None:     # the writer logged the failed batch; no traceback per request
            log.warning("write refused by storage: %s", err)
            return error_response(refused)
        log.exception("unhandled error", exc_info=err)
        return error_response(MatrixError("Internal server error"))
