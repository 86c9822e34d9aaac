"""The four vendors' APIs and OpenAI's, each served at its own base URL from the same store (see docs/dialects/)."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from threadline.dialects.base import Dialect
from threadline.dialects.mapping import VENDORS


def dialects() -> list[Dialect]:
    from threadline.dialects.openai.endpoints import DIALECT as OPENAI

    vendors = [importlib.import_module(f"threadline.dialects.{vendor}.endpoints").DIALECT for vendor in VENDORS]
    return [*vendors, OPENAI]


def install(app: FastAPI) -> None:
    """Mount every dialect's routes under its prefix and render errors there in its envelope. The routes
    stay out of /openapi.json: their contract is the vendor's document (``tests/dialects/documents``, and OpenAI's
    own in ``tests/dialects/openai``)."""
    for dialect in dialects():
        app.include_router(dialect.router, prefix=dialect.prefix, include_in_schema=False)
        app.state.surfaces.register(dialect.prefix, dialect.render_error)
