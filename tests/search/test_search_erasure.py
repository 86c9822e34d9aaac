"""An erased end user's words leave the full-text index too (SQLite keeps a deleted row's words in its FTS5
segments until they are merged: the erasure compacts the index before it says it is complete)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import threadline.privacy.tasks  # noqa: F401 - registers the erasure job
from tests.factories import create_end_user, create_thread, post_message
from tests.privacy.conftest import erase, erased, scan
from tests.runs.conftest import running_worker
from threadline.config import Settings
from threadline.jobs.worker import Worker
from threadline.privacy.erasure import ERASE_KIND


def _letters(n: int = 12) -> str:
    return "".join(secrets.choice("ghjkmnpqrstvwxyz") for _ in range(n))


@pytest.fixture
async def erasure_worker(sessionmaker: Any, settings: Settings) -> AsyncIterator[Worker]:
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)) as w:
        yield w


async def test_an_erased_end_users_words_are_in_no_index_afterwards(
    api: httpx.AsyncClient, sessionmaker: Any, settings: Settings, erasure_worker: Worker, is_postgres: bool
) -> None:
    name, word = f"zq{_letters()}", f"zx{_letters()}"  # single words, as the index keeps them
    # FTS5 stores a term after the one before it in its leaf as (shared prefix length, the rest): only the rest is
    # in the index as written. So the scans look for each word's random tail, which no other term shares and no
    # hex id or hash can hold (its letters are none of 0-9a-f).
    name_tail, word_tail = name[-8:], word[-8:]
    person = await create_end_user(api, display_name=f"Ann {name}")
    thread = await create_thread(api, end_user_id=person["id"])
    for i in range(3):
        await post_message(api, thread["id"], f"my {word} number {i}")
    neighbour = await create_end_user(api, display_name="Bob")
    kept = await post_message(api, (await create_thread(api, end_user_id=neighbour["id"]))["id"], "kept words")
    found = await api.get("/v1/search/messages", params={"q": word})
    assert len(found.json()["data"]) == 3
    if not is_postgres:
        # The index's own tables hold the words: the scan below would see them if they stayed.
        holding = {t.table for t in await scan(sessionmaker, settings, word_tail, name_tail)}
        assert {"messages_fts_data", "end_users_fts_data"} <= holding, holding

    await erased(api, (await erase(api, person["id"]))["id"])

    assert await scan(sessionmaker, settings, word_tail, name_tail) == []
    for q in (word, name):
        assert (await api.get("/v1/search/messages", params={"q": q})).json()["data"] == []
    assert [r["id"] for r in (await api.get("/v1/search/messages", params={"q": "kept"})).json()["data"]] == [
        kept["id"]
    ]
