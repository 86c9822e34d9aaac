"""A small Server-Sent Events reader for tests (the format as the HTML standard parses it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Frames as they arrive; comment-only blocks come as frames with ``comments`` and no data."""
    current = Frame()
    data_lines: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            current.data = "\n".join(data_lines)
            yield current
            current, data_lines = Frame(), []
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "retry":
            current.retry = int(value)


class Stream:
    """An open event stream whose frames are collected in the background."""

    def __init__(self, client: httpx.AsyncClient, url: str, **kwargs: Any) -> None:
        self.client = client
        self.url = url
        self.kwargs = kwargs
        self.frames: list[Frame] = []
        self.response: httpx.Response | None = None
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    @property
    def events(self) -> list[Frame]:
        return [f for f in self.frames if f.event is not None]

    async def __aenter__(self) -> Stream:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._opened.wait(), 10)
        assert self.response is not None
        return self

    async def _run(self) -> None:
        async with self.client.stream("GET", self.url, **self.kwargs) as response:
            self.response = response
            self._opened.set()
            if response.status_code != 200:
                await response.aread()
                return
            async for frame in frames(response):
                self.frames.append(frame)
                self._arrived.set()

    async def wait_for(self, count: int, seconds: float = 10) -> list[Frame]:
        """Until ``count`` events (frames with an event name) have arrived."""

        async def enough() -> None:
            while len(self.events) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), seconds)
        return self.events

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
