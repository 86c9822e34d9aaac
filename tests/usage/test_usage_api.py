"""GET /v1/usage through HTTP: runs and tokens per day and agent, filters, estimated cost, tenancy, scopes,
and bad parameters answered 422 in the native error format."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant, add_key
from tests.usage.helpers import agent_with_versions, count
from threadline.kit.clock import utcnow
from threadline.models.enums import Scope

Maker = async_sessionmaker[AsyncSession]
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
USD = {"currency": "USD", "input_per_million_tokens": 2.5, "output_per_million_tokens": 10.0}
USD_CHEAP = {"currency": "USD", "input_per_million_tokens": 0.15, "output_per_million_tokens": 0.6}
EUR = {"currency": "EUR", "input_per_million_tokens": 1.0, "output_per_million_tokens": 1.0}
RANGE = {"start": "2026-03-01", "end": "2026-03-03"}


async def _usage(api: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    r = await api.get("/v1/usage", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _runs(completed: int = 0, failed: int = 0, cancelled: int = 0) -> dict[str, int]:
    return {"completed": completed, "failed": failed, "cancelled": cancelled, "total": completed + failed + cancelled}


async def test_runs_and_tokens_per_day_and_agent_with_the_estimated_cost(
    api: httpx.AsyncClient, sessionmaker: Maker
) -> None:
    # "Alpha" has two priced versions (both USD), "Beta" one without a price.
    alpha = await agent_with_versions(api, sessionmaker, "Alpha", USD, USD_CHEAP)
    beta = await agent_with_versions(api, sessionmaker, "Beta", None)
    await count(sessionmaker, alpha, day=D1, input_tokens=1_000_000, output_tokens=100_000, tool_calls=3)
    await count(sessionmaker, alpha, day=D1, version=1, outcome="failed", input_tokens=2_000_000, estimated=True)
    await count(sessionmaker, alpha, day=D3, outcome="cancelled", input_tokens=400, output_tokens=0)
    await count(sessionmaker, beta, day=D1, input_tokens=50, output_tokens=5)
    await count(sessionmaker, beta, day=D2, input_tokens=10, output_tokens=1, estimated=True)
    await count(sessionmaker, alpha, day=D3 + timedelta(days=1), input_tokens=999)  # after the range

    body = await _usage(api, **RANGE)
    assert body["object"] == "usage" and body["start"] == "2026-03-01" and body["end"] == "2026-03-03"
    assert body["group_by"] == "day"
    assert body["data"] == [
        {
            "date": "2026-03-01",
            "agent_id": alpha.id,
            "agent_name": "Alpha",
            "runs": _runs(completed=1, failed=1),
            "input_tokens": 3_000_000,
            "output_tokens": 100_000,
            "total_tokens": 3_100_000,
            "estimated_runs": 1,
            "tool_calls": 3,
            # v1: 1M x 2.5 + 0.1M x 10 = 3.5; v2: 2M x 0.15 = 0.3
            "estimated_cost": {"currency": "USD", "amount": 3.8},
        },
        {
            "date": "2026-03-01",
            "agent_id": beta.id,
            "agent_name": "Beta",
            "runs": _runs(completed=1),
            "input_tokens": 50,
            "output_tokens": 5,
            "total_tokens": 55,
            "estimated_runs": 0,
            "tool_calls": 0,
            "estimated_cost": None,  # no version of Beta has a price
        },
        {
            "date": "2026-03-02",
            "agent_id": beta.id,
            "agent_name": "Beta",
            "runs": _runs(completed=1),
            "input_tokens": 10,
            "output_tokens": 1,
            "total_tokens": 11,
            "estimated_runs": 1,
            "tool_calls": 0,
            "estimated_cost": None,
        },
        {
            "date": "2026-03-03",
            "agent_id": alpha.id,
            "agent_name": "Alpha",
            "runs": _runs(cancelled=1),
            "input_tokens": 400,
            "output_tokens": 0,
            "total_tokens": 400,
            "estimated_runs": 0,
            "tool_calls": 0,
            "estimated_cost": {"currency": "USD", "amount": 0.001},
        },
    ]
    assert body["totals"] == {
        "runs": _runs(completed=3, failed=1, cancelled=1),
        "input_tokens": 3_000_460,
        "output_tokens": 100_006,
        "total_tokens": 3_100_466,
        "estimated_runs": 2,
        "tool_calls": 3,
        "estimated_cost": {"currency": "USD", "amount": 3.801},  # Beta's tokens have no price: they add nothing
    }


async def test_grouped_by_agent_one_row_per_agent_over_the_range(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    alpha = await agent_with_versions(api, sessionmaker, "Alpha", USD, USD_CHEAP)
    beta = await agent_with_versions(api, sessionmaker, "Beta", None)
    for day in (D1, D2, D3):
        await count(sessionmaker, alpha, day=day, input_tokens=100_000, output_tokens=10_000)
        await count(sessionmaker, alpha, day=day, version=1, input_tokens=100_000)
    await count(sessionmaker, beta, day=D2, outcome="failed", input_tokens=7)
    body = await _usage(api, **RANGE, group_by="agent")
    assert body["group_by"] == "agent"
    rows = {row["agent_name"]: row for row in body["data"]}
    assert [row["agent_name"] for row in body["data"]] == ["Alpha", "Beta"]
    assert rows["Alpha"]["date"] is None and rows["Alpha"]["agent_id"] == alpha.id
    assert rows["Alpha"]["runs"] == _runs(completed=6)
    assert rows["Alpha"]["input_tokens"] == 600_000 and rows["Alpha"]["output_tokens"] == 30_000
    # 3 x (0.1M x 2.5 + 0.01M x 10) + 3 x 0.1M x 0.15 = 3 x 0.35 + 0.045
    assert rows["Alpha"]["estimated_cost"] == {"currency": "USD", "amount": pytest.approx(1.095)}
    assert rows["Beta"]["runs"] == _runs(failed=1) and rows["Beta"]["estimated_cost"] is None
    by_day = await _usage(api, **RANGE)
    assert by_day["totals"] == body["totals"]


async def test_prices_in_two_currencies_give_no_single_amount(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    mixed = await agent_with_versions(api, sessionmaker, "Mixed", USD, EUR)
    euro = await agent_with_versions(api, sessionmaker, "Euro", EUR)
    await count(sessionmaker, mixed, day=D1, input_tokens=1_000_000)
    await count(sessionmaker, mixed, day=D1, version=1, input_tokens=1_000_000)
    await count(sessionmaker, mixed, day=D2, version=1, input_tokens=2_000_000)
    await count(sessionmaker, euro, day=D2, output_tokens=500_000)
    body = await _usage(api, **RANGE)
    costs = {(row["date"], row["agent_name"]): row["estimated_cost"] for row in body["data"]}
    assert costs == {
        ("2026-03-01", "Mixed"): None,  # USD and EUR on one row: no one sum
        ("2026-03-02", "Euro"): {"currency": "EUR", "amount": 0.5},
        ("2026-03-02", "Mixed"): {"currency": "EUR", "amount": 2.0},
    }
    assert body["totals"]["estimated_cost"] is None


async def test_the_range_is_inclusive_and_agent_id_keeps_one_agent(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    alpha = await agent_with_versions(api, sessionmaker, "Alpha")
    beta = await agent_with_versions(api, sessionmaker, "Beta")
    for day in (D1 - timedelta(days=1), D1, D2, D3, D3 + timedelta(days=1)):
        await count(sessionmaker, alpha, day=day, input_tokens=1)
        await count(sessionmaker, beta, day=day, input_tokens=10)
    body = await _usage(api, start="2026-03-01", end="2026-03-02")
    assert [(r["date"], r["agent_name"]) for r in body["data"]] == [
        ("2026-03-01", "Alpha"),
        ("2026-03-01", "Beta"),
        ("2026-03-02", "Alpha"),
        ("2026-03-02", "Beta"),
    ]
    one_day = await _usage(api, start="2026-03-03", end="2026-03-03", agent_id=beta.id)
    assert [(r["date"], r["agent_id"], r["input_tokens"]) for r in one_day["data"]] == [("2026-03-03", beta.id, 10)]
    assert one_day["totals"]["input_tokens"] == 10
    nothing = await _usage(api, start="2020-01-01", end="2020-01-31", agent_id=alpha.id)
    assert (
        nothing["data"] == [] and nothing["totals"]["runs"] == _runs() and nothing["totals"]["estimated_cost"] is None
    )


async def test_by_default_the_last_30_days_up_to_today(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    today = utcnow().date()
    agent = await agent_with_versions(api, sessionmaker, "Recent")
    await count(sessionmaker, agent, day=today, input_tokens=1)
    await count(sessionmaker, agent, day=today - timedelta(days=29), input_tokens=10)
    await count(sessionmaker, agent, day=today - timedelta(days=30), input_tokens=100)
    body = await _usage(api)
    assert body["start"] == (today - timedelta(days=29)).isoformat() and body["end"] == today.isoformat()
    assert body["totals"]["input_tokens"] == 11
    only_end = await _usage(api, end=(today - timedelta(days=1)).isoformat())
    assert only_end["start"] == (today - timedelta(days=30)).isoformat() and only_end["totals"]["input_tokens"] == 110


async def test_another_workspaces_agent_is_404_and_its_usage_is_never_seen(
    api: httpx.AsyncClient, app: Any, sessionmaker: Maker, other_tenant: Tenant
) -> None:
    mine = await agent_with_versions(api, sessionmaker, "Mine")
    await count(sessionmaker, mine, day=D1, input_tokens=5)
    other_api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=other_tenant.headers
    )
    async with other_api:
        theirs = await agent_with_versions(other_api, sessionmaker, "Theirs", USD)
        await count(sessionmaker, theirs, day=D1, input_tokens=1_000_000)
        r = await other_api.get("/v1/usage", params={**RANGE, "agent_id": mine.id})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found" and r.json()["error"]["param"] == "agent_id"
        theirs_seen = (await other_api.get("/v1/usage", params=RANGE)).json()
    assert [row["agent_id"] for row in theirs_seen["data"]] == [theirs.id]
    body = await _usage(api, **RANGE)
    assert [row["agent_id"] for row in body["data"]] == [mine.id] and body["totals"]["input_tokens"] == 5
    assert theirs.id not in str(body)
    unknown = await api.get("/v1/usage", params={"agent_id": "not-an-id"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "agent_id"


async def test_a_key_needs_the_read_scope(client: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant) -> None:
    read = await add_key(sessionmaker, tenant, (Scope.READ,))
    none = await add_key(sessionmaker, tenant, ())
    assert (await client.get("/v1/usage", headers={"Authorization": f"Bearer {read}"})).status_code == 200
    refused = await client.get("/v1/usage", headers={"Authorization": f"Bearer {none}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    anonymous = await client.get("/v1/usage")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start": "2026-03-05", "end": "2026-03-04"}, "start"),
        ({"start": "2025-01-01", "end": "2026-01-02"}, "end"),  # 367 days
        ({"start": "2020-01-01"}, "end"),  # up to today: far more than 366 days
        ({"start": "2026-02-30"}, "start"),
        ({"start": "1772323200"}, "start"),  # Unix time is not a date
        ({"end": "2026-03-01T00:00:00Z"}, "end"),
        ({"end": "03/01/2026"}, "end"),
        ({"end": ""}, "end"),
        ({"group_by": "week"}, "group_by"),
        ({"agent_id": "x" * 65}, "agent_id"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    r = await api.get("/v1/usage", params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


async def test_a_repeated_parameter_is_refused(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/usage?start=2026-03-01&start=2026-03-02")
    assert r.status_code == 422 and r.json()["error"]["param"] == "start"


@pytest.mark.parametrize(
    "params",
    [
        {"start": "0001-01-01", "end": "0001-01-05"},
        {"end": "0001-01-05"},  # 29 days before it would be before the first date there is
        {"start": "9999-12-31", "end": "9999-12-31"},
        {"start": "9998-12-31", "end": "9999-12-31"},
    ],
)
async def test_the_ends_of_the_calendar_are_answered_not_a_500(api: httpx.AsyncClient, params: dict[str, str]) -> None:
    body = await _usage(api, **params)
    assert body["data"] == [] and body["end"] == params["end"]
