"""One-time sign-in links, and the ends of sessions: expiry, a password change, the user deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.console.conftest import (
    OperatorAccount,
    browser_client,
    make_operator,
    sign_in,
    sign_in_form,
    submit_sign_in,
)
from threadline.console import service as console
from threadline.console.web import FORM_COOKIE, SESSION_COOKIE
from threadline.kit.clock import utcnow
from threadline.models import ConsoleSession, SignInLink, User
from threadline.users import service as users

Maker = async_sessionmaker[AsyncSession]


async def _user(session: AsyncSession, account: OperatorAccount) -> User:
    user = await users.find_user(session, workspace_id=account.tenant.workspace_id, ref=account.email)
    assert user is not None
    return user


async def _link(sessionmaker: Maker, account: OperatorAccount, ttl: timedelta = timedelta(hours=1)) -> str:
    async with sessionmaker() as session, session.begin():
        return await console.issue_link(session, user=await _user(session, account), ttl=ttl)


async def _use(client: httpx.AsyncClient, token: str, password: str = "", confirm: str | None = None) -> httpx.Response:
    if FORM_COOKIE not in client.cookies:
        await sign_in_form(client)
    data = {
        "csrf_token": client.cookies[FORM_COOKIE],
        "token": token,
        "password": password,
        "confirm": password if confirm is None else confirm,
    }
    return await client.post("/console/welcome", data=data)


async def test_a_link_sets_the_password_signs_in_and_works_only_once(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    newcomer = await make_operator(sessionmaker, operator.tenant, password=None, first_name=None, last_name=None)
    token = await _link(sessionmaker, newcomer)
    async with browser_client(app) as client:
        landing = await client.get(f"/console/welcome?token={token}")
        assert landing.status_code == 200
        assert newcomer.email in landing.text and operator.tenant.name in landing.text
        assert "Set password and sign in" in landing.text
        assert (await client.get(f"/console/welcome?token={token}")).status_code == 200  # looking uses nothing
        r = await _use(client, token, "my first password")
        assert r.status_code == 303 and r.headers["location"] == "/console/inbox", r.text
        inbox = await client.get("/console/inbox")
        assert inbox.status_code == 200 and newcomer.email in inbox.text  # no name: the email stands for it
    async with browser_client(app) as again:
        assert (await again.get(f"/console/welcome?token={token}")).status_code == 410
        r = await _use(again, token, "another password")
        assert r.status_code == 410 and "used already" in r.text
        assert SESSION_COOKIE not in again.cookies
        # The password the link set is the one that signs in.
        assert (await submit_sign_in(again, newcomer.email, "another password")).status_code == 401
        assert (await submit_sign_in(again, newcomer.email, "my first password")).status_code == 303


async def test_a_link_refuses_a_short_or_mismatched_password_and_stays_usable(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    newcomer = await make_operator(sessionmaker, operator.tenant, password=None)
    token = await _link(sessionmaker, newcomer)
    async with browser_client(app) as client:
        r = await _use(client, token, "short")
        assert r.status_code == 422 and "at least 8 characters" in r.text
        r = await _use(client, token, "long enough one", "long enough two")
        assert r.status_code == 422 and "not the same" in r.text
        r = await _use(client, token, "")  # a user without a password must choose one
        assert r.status_code == 422 and "Choose a password to finish signing in." in r.text
        assert SESSION_COOKIE not in client.cookies
        assert (await _use(client, token, "long enough one")).status_code == 303


async def test_a_link_for_someone_with_a_password_signs_in_without_changing_it(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    token = await _link(sessionmaker, operator)
    async with browser_client(app) as client:
        landing = await client.get(f"/console/welcome?token={token}")
        assert "New password (optional)" in landing.text
        assert (await _use(client, token)).status_code == 303
        assert (await client.get("/console/inbox")).status_code == 200
    async with browser_client(app) as other:
        assert (await submit_sign_in(other, operator.email, operator.password)).status_code == 303


async def test_expired_or_unknown_links_are_refused(app: Any, sessionmaker: Maker, operator: OperatorAccount) -> None:
    expired = await _link(sessionmaker, operator, ttl=timedelta(seconds=-1))
    async with browser_client(app) as client:
        for token in (expired, "nonsense", "", "x" * 300):
            r = await client.get("/console/welcome", params={"token": token})
            assert r.status_code in (410, 422), token
            r = await _use(client, token, "whatever password")
            assert r.status_code == 410, token
            assert SESSION_COOKIE not in client.cookies


async def test_a_new_link_forgets_used_and_expired_ones_and_tokens_are_stored_hashed(
    sessionmaker: Maker, operator: OperatorAccount
) -> None:
    old = await _link(sessionmaker, operator, ttl=timedelta(seconds=-1))
    current = await _link(sessionmaker, operator)
    async with sessionmaker() as session:
        user = await _user(session, operator)
        rows = (await session.execute(select(SignInLink).where(SignInLink.user_id == user.id))).scalars().all()
    assert [r.token_hash for r in rows] == [console.digest(current)]
    assert old not in repr([r.__dict__ for r in rows]) and current not in repr([r.__dict__ for r in rows])


async def test_changing_the_password_ends_every_session_of_that_user_only(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    colleague = await make_operator(sessionmaker, operator.tenant)
    async with browser_client(app) as laptop, browser_client(app) as phone, browser_client(app) as other:
        await sign_in(laptop, operator)
        await sign_in(phone, operator)
        await sign_in(other, colleague)
        async with sessionmaker() as session, session.begin():
            await users.set_password(session, user=await _user(session, operator), password="a fresh password")
        for client in (laptop, phone):
            r = await client.get("/console/inbox")
            assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")
        assert (await other.get("/console/inbox")).status_code == 200
        assert (await submit_sign_in(laptop, operator.email, operator.password)).status_code == 401
        assert (await submit_sign_in(laptop, operator.email, "a fresh password")).status_code == 303


async def test_deleting_the_user_through_the_api_ends_their_sessions(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    async with browser_client(app) as client:
        await sign_in(client, operator)
        r = await client.delete(f"/v1/users/{operator.user_public_id}", headers=operator.tenant.headers)
        assert r.status_code == 204
        assert (await client.get("/console/inbox")).status_code == 303
    async with sessionmaker() as session:
        left = (
            await session.execute(
                select(ConsoleSession).where(ConsoleSession.workspace_id == operator.tenant.workspace_id)
            )
        ).all()
    assert left == []


async def test_a_session_expires(app: Any, sessionmaker: Maker, operator: OperatorAccount) -> None:
    async with browser_client(app) as client:
        await sign_in(client, operator)
        digest = console.digest(client.cookies[SESSION_COOKIE])
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(ConsoleSession).where(ConsoleSession.token_hash == digest).values(expires_at=utcnow())
            )
        assert (await client.get("/console/inbox")).status_code == 303


async def test_last_seen_is_written_every_few_minutes_not_on_every_request(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    async with browser_client(app) as client:
        await sign_in(client, operator)
        digest = console.digest(client.cookies[SESSION_COOKIE])

        async def last_seen() -> Any:
            async with sessionmaker() as session:
                row = (
                    await session.execute(select(ConsoleSession).where(ConsoleSession.token_hash == digest))
                ).scalar_one()
                return row.last_seen_at

        first = await last_seen()
        assert (await client.get("/console/inbox")).status_code == 200
        assert await last_seen() == first
        long_ago = utcnow() - timedelta(hours=1)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(ConsoleSession).where(ConsoleSession.token_hash == digest).values(last_seen_at=long_ago)
            )
        assert (await client.get("/console/inbox")).status_code == 200
        assert await last_seen() > long_ago + timedelta(minutes=59)
