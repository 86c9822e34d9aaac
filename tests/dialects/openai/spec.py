"""OpenAI's published OpenAPI document, the part of it for the operations the mount serves (``openai-openapi.json``,
see SOURCE.md), as JSON Schema validators: a body the mount answers must be valid against OpenAI's own schema."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs

DOCUMENT = Path(__file__).with_name("openai-openapi.json")


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(name: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def problems(name: str, instance: Any) -> list[str]:
    """Why ``instance`` is not a valid ``name`` (a schema of OpenAI's document); empty when it is."""
    return [
        f"{'/'.join(str(p) for p in e.instance_path)}: {e.message[:300]}"
        for e in _validator(name).iter_errors(instance)
    ]


def assert_valid(name: str, instance: Any) -> None:
    found = problems(name, instance)
    assert not found, f"not a valid {name} under OpenAI's document:\n  " + "\n  ".join(found[:10])


# The schema of each operation's 200 answer, as the document names it.
ANSWERS = {
    ("POST", "/conversations"): "ConversationResource",
    ("GET", "/conversations/{conversation_id}"): "ConversationResource",
    ("POST", "/conversations/{conversation_id}"): "ConversationResource",
    ("DELETE", "/conversations/{conversation_id}"): "DeletedConversationResource",
    ("GET", "/conversations/{conversation_id}/items"): "ConversationItemList",
    ("POST", "/conversations/{conversation_id}/items"): "ConversationItemList",
    ("GET", "/conversations/{conversation_id}/items/{item_id}"): "ConversationItem",
    ("DELETE", "/conversations/{conversation_id}/items/{item_id}"): "ConversationResource",
    ("POST", "/responses"): "Response",
    ("GET", "/responses/{response_id}"): "Response",
}


def answer_schema(method: str, path: str) -> str:
    """The schema name the document gives the 200 answer of ``method path`` (and checks it says so)."""
    name = ANSWERS[(method, path)]
    declared = document()["paths"][path][method.lower()]["responses"]["200"]["content"]["application/json"]["schema"]
    assert declared == {"$ref": f"#/components/schemas/{name}"}
    return name


# ------------------------------------------------------------------------------------------------ on the wire

PREFIX = "/openai/v1"


def _operation(method: str, path: str) -> tuple[str, str] | None:
    """The document's path template ``path`` (under the mount) matches, with ``method``."""
    parts = path.removeprefix(PREFIX).strip("/").split("/")
    for key_method, template in ANSWERS:
        pattern = template.strip("/").split("/")
        if key_method == method and len(pattern) == len(parts):
            if all(p == q or (p.startswith("{") and q) for p, q in zip(pattern, parts, strict=True)):
                return key_method, template
    return None


def check_answer(response: httpx.Response, request: httpx.Request) -> str | None:
    """Hold one answer of the mount to OpenAI's document: a JSON 200 to its operation's schema, an error to
    ``ErrorResponse``. Returns the schema checked (None for a stream, checked event by event elsewhere)."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        return None
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    if response.status_code >= 400:
        assert_valid("ErrorResponse", body)
        return "ErrorResponse"
    operation = _operation(request.method, request.url.path)
    assert operation is not None, f"no operation of the document for {request.method} {request.url}"
    assert response.status_code == 200, response.status_code
    name = answer_schema(*operation)
    if name == "ConversationItemList" and not body["data"]:
        # An empty list names no first and last item: null, as OpenAI's lists answer (the document types both as
        # strings, which an empty list cannot give). The rest of it must hold.
        assert body["first_id"] is None and body["last_id"] is None
        body = {**body, "first_id": "", "last_id": ""}
    assert_valid(name, body)
    return name


class CheckedTransport(httpx.HTTPTransport):
    """The SDK's transport, checking every answer against OpenAI's document as it arrives (``checked`` keeps the
    schema names, so a test can tell the checks ran)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checked: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
            self.checked.append(check_answer(response, request))
        return response


class AsyncCheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checked: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aread()
            self.checked.append(check_answer(response, request))
        return response
