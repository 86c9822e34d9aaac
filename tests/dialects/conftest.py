from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.runs.scripted import ScriptedProvider, Step
from threadline.engines.providers.base import CompletionRequest, StreamItem
from threadline.runs.runtime import Runtime


@pytest.fixture
async def anon(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no credentials of its own: each request brings the headers its dialect wants
    (``api`` shares ``client`` and sets the /v1 Authorization header on it)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class ByMessage(ScriptedProvider):
    """The scripted model, answering by the end user's last message: runs that other tests left queued (the
    seeded threads' messages, answered by whichever worker starts next) cannot take a step meant for this
    test's runs; they get the default."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Step] = {}

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:  # type: ignore[override]
        step = self.answers.get(last_user_text(request) or "")
        if step is not None:
            self.steps.insert(0, step)  # taken at once by the scripted stream below, before any await
        async for item in super().stream(request):
            yield item

    def asked(self, text: str) -> list[CompletionRequest]:
        """The model calls made to answer ``text``."""
        return [r for r in self.requests if last_user_text(r) == text]


def last_user_text(request: CompletionRequest) -> str | None:
    return next((m.content for m in reversed(request.messages) if m.role == "user"), None)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> ByMessage:
    scripted = ByMessage()
    monkeypatch.setattr(Runtime, "provider", lambda self, name: scripted)
    return scripted
