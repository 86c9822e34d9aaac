"""The one error family that services raise; each API surface renders it in its own envelope."""

from __future__ import annotations

from typing import Any


class ThreadlineError(Exception):
    """A failure a client can act on: an HTTP status, a stable machine code, a message, maybe a param."""

    status_code: int = 400
    code: str = "bad_request"
    type: str = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details
        self.headers = headers  # sent with the error (e.g. Retry-After)
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class InvalidRequest(ThreadlineError):
    status_code = 400
    code = "invalid_request"


class ValidationFailed(ThreadlineError):
    status_code = 422
    code = "validation_error"


class Unauthenticated(ThreadlineError):
    status_code = 401
    code = "unauthenticated"
    type = "authentication_error"


class Forbidden(ThreadlineError):
    status_code = 403
    code = "insufficient_scope"
    type = "permission_error"


class NotFound(ThreadlineError):
    status_code = 404
    code = "not_found"
    type = "not_found_error"


class Gone(ThreadlineError):
    """What was there is gone for good (an erased end user, and their threads while the erasure runs)."""

    status_code = 410
    code = "gone"
    type = "not_found_error"


class Conflict(ThreadlineError):
    status_code = 409
    code = "conflict"
    type = "conflict_error"


class TooManyRequests(ThreadlineError):
    status_code = 429
    code = "rate_limited"
    type = "rate_limit_error"


class Unavailable(ThreadlineError):
    status_code = 503
    code = "unavailable"
    type = "api_error"
