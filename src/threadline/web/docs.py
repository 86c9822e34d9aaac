"""``/docs``: Swagger UI over ``/openapi.json``, its script, style sheet and icon served from the package.

FastAPI's own page loads them from a CDN, which leaves ``/docs`` blank on a machine without network. The
files are swagger-ui-dist's, unchanged (static/swagger-ui/README.md: version, digests, how to update).
ReDoc is not served.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

SWAGGER_UI_VERSION = "5.36.0"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"


def add_docs(app: FastAPI, *, title: str, openapi_url: str) -> None:
    """Serve ``/docs`` and, under ``/docs/static/``, the Swagger UI files it loads (public, like the document)."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - API reference",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        oauth2_redirect_url=None,
        # Swagger UI would otherwise send the document's address to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    body = bytes(page.body)

    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(body)

    app.add_api_route(DOCS_PATH, swagger_ui, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="swagger-ui")
