"""The error responses every /v1 operation documents, so clients (and schemathesis) know their shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorObject(BaseModel):
    type: str = Field(description="Family: invalid_request_error, authentication_error, permission_error, ...")
    code: str = Field(description="Stable machine-readable code, e.g. not_found, validation_error.")
    message: str = Field(description="What went wrong, for a human.")
    param: str | None = Field(description="The field, query parameter or header at fault, if any.")
    details: dict[str, Any] | None = Field(default=None, description="Extra context, e.g. every validation error.")


class ErrorBody(BaseModel):
    error: ErrorObject


def _response(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _response("Bad request: e.g. an after/before id that is not in this list."),
    401: _response("Missing, unknown or revoked API key."),
    403: _response("The API key lacks the scope this operation needs."),
    404: _response("No such resource in this workspace."),
    408: _response("The request body did not arrive within THREADLINE_REQUEST_BODY_TIMEOUT_S."),
    409: _response("Conflicts with the current state (duplicate name, resource in use)."),
    413: _response("The request body is larger than THREADLINE_MAX_REQUEST_BYTES."),
    422: _response("The request failed validation; `param` names the field."),
    429: _response(
        "Over a rate limit (see the RateLimit-* headers) or a cap on streams or waiting requests; retry after "
        "Retry-After seconds."
    ),
}
