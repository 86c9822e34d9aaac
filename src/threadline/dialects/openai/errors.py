"""OpenAI's error envelope, ``{"error": {"message", "type", "param", "code"}}``, with the statuses OpenAI's clients
know (the SDK raises a typed exception for each: 400 BadRequestError, 401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 429 RateLimitError, 5xx InternalServerError)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from threadline.errors import ThreadlineError
from threadline.web.surfaces import ErrorInfo

# A thread a human has, or one that is blocked, takes no run: POST /responses refuses instead of answering with
# nothing. 409, and the SDK is told not to retry (it would retry a 409 by default).
NO_RETRY = {"x-should-retry": "false"}


class Refused(ThreadlineError):
    """The conversation takes no response now (docs/dialects/openai.md, "When the agent does not answer")."""

    status_code = 409
    type = "invalid_request_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code, param="conversation", headers=dict(NO_RETRY))


def _status(status: int) -> int:
    if status in (415, 422):  # OpenAI refuses every malformed request with a 400
        return 400
    if status == 410:  # an erased end user's thread: gone as if it never was
        return 404
    return status


def render_error(err: ErrorInfo) -> Response:
    status = _status(err.status_code)
    code: str | None = err.code
    message = err.message
    if status >= 500:
        type_, message = "server_error", "The server had an error while processing your request."
        code = "server_error" if status == 500 else err.code
    elif status == 401:
        # What OpenAI answers for a missing, wrong or revoked key.
        type_, code = "invalid_request_error", "invalid_api_key"
    elif status == 429:
        type_ = "requests"  # OpenAI's type for a request budget (its token budgets are "tokens")
    else:
        type_ = "invalid_request_error"
    body = {"error": {"message": message, "type": type_, "param": err.param, "code": code}}
    return JSONResponse(body, status_code=status)
