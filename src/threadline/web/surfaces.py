"""Each API surface (the native /v1, later each vendor's dialect) renders errors in its own envelope.

Services raise ``ThreadlineError``; the app's exception handlers find the surface by path prefix and
let it render. A dialect adds itself with ``register_surface``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    status_code: int
    type: str
    code: str
    message: str
    param: str | None = None
    details: dict[str, Any] | None = None


ErrorRenderer = Callable[[ErrorInfo], Response]


def render_native(err: ErrorInfo) -> Response:
    """``{"error": {"type", "code", "message", "param"}}``: the /v1 error format (see docs/api.md)."""
    body: dict[str, Any] = {
        "type": err.type,
        "code": err.code,
        "message": err.message,
        "param": err.param,
    }
    if err.details:
        body["details"] = err.details
    return JSONResponse({"error": body}, status_code=err.status_code)


@dataclass
class SurfaceRegistry:
    """Path prefix -> error renderer; the longest matching prefix wins, the native one is the fallback."""

    renderers: list[tuple[str, ErrorRenderer]]

    def register(self, prefix: str, renderer: ErrorRenderer) -> None:
        self.renderers.append((prefix, renderer))
        self.renderers.sort(key=lambda item: len(item[0]), reverse=True)

    def renderer_for(self, path: str) -> ErrorRenderer:
        for prefix, renderer in self.renderers:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return renderer
        return render_native
