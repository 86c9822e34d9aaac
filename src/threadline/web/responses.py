"""Hot paths answer with JSON serialized once, in pydantic-core, from plain data.

FastAPI would validate a returned model against ``response_model`` again and then serialize it; for a
page of 100 messages that doubles the work. Routes keep ``response_model`` for the OpenAPI document,
and the test suite (schemathesis' response checks) holds the bytes to it.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(content=to_json(content), status_code=status_code, media_type="application/json")
