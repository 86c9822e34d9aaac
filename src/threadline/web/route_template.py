"""The full route template of a request (``/v1/threads/{thread_id}/messages``), for logs and metric labels.

Since FastAPI 0.137, ``scope["route"]`` of a route added through ``include_router(prefix=...)`` is the
router's own route object, whose ``path`` lacks the include prefixes (``/{thread_id}/messages``;
fastapi/fastapi#16051). The public ``iter_route_contexts`` lists every route with its effective, full
template; this maps the matched route object onto it, once per app (rebuilt when a route shows up that
was added after the first request).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import Scope

try:  # FastAPI >= 0.137.2
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI copies included routes with their full path
    iter_route_contexts = None  # type: ignore[assignment]

_INDEX_KEY = "route_template_index"
_METHODS_KEY = "route_methods_index"


def route_template(scope: Scope) -> str | None:
    """The matched route's template with every include prefix, or None when no route matched."""
    route = scope.get("route")
    if route is None:
        return None
    fallback = getattr(route, "path_format", None) or getattr(route, "path", None)
    app = scope.get("app")
    if iter_route_contexts is None or app is None:
        return fallback
    state = getattr(app, "state", None)
    index: dict[int, tuple[Any, list[tuple[re.Pattern[str] | None, str]]]] | None = getattr(state, _INDEX_KEY, None)
    if index is None or id(route) not in index:
        index = _build_index(app)
        if state is not None:
            setattr(state, _INDEX_KEY, index)
    entry = index.get(id(route))
    if entry is None or entry[0] is not route:
        return fallback
    templates = entry[1]
    if len(templates) > 1:  # the same router included more than once: the one this path matches
        path = scope.get("path", "")
        for regex, template in templates:
            if regex is not None and regex.match(path):
                return template
    return templates[0][1]


def _build_index(app: Any) -> dict[int, tuple[Any, list[tuple[re.Pattern[str] | None, str]]]]:
    index: dict[int, tuple[Any, list[tuple[re.Pattern[str] | None, str]]]] = {}
    for context in iter_route_contexts(getattr(app, "routes", [])):
        template = context.path_format
        if not template:
            continue
        original = context.original_route
        index.setdefault(id(original), (original, []))[1].append((getattr(context, "path_regex", None), template))
    return index


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route serves at ``path`` (for the ``Allow`` header of a 405: Starlette names only
    the methods of the first route that matched the path, not of all the routes sharing it)."""
    state = getattr(app, "state", None)
    routes: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(state, _METHODS_KEY, None)
    if routes is None:
        routes = []
        if iter_route_contexts is not None:
            for context in iter_route_contexts(getattr(app, "routes", [])):
                regex = getattr(context, "path_regex", None)
                methods = getattr(context.original_route, "methods", None)
                if regex is not None and methods:
                    routes.append((regex, frozenset(methods)))
        if state is not None:
            setattr(state, _METHODS_KEY, routes)
    allowed: set[str] = set()
    for regex, methods in routes:
        if regex.match(path):
            allowed |= methods
    return sorted(allowed)
