"""A sign-in whose body dribbles in holds nothing (tests/security/test_slow_bodies.py has the console among its
surfaces) and is refused in the console's own format once the body timeout passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.livesrv import live_server
from tests.security.conftest import server_env, slow_request

ANSWER_WITHIN_S = 15.0


@pytest.fixture(scope="module")
def impatient_server(database_url: str, settings: Any) -> Iterator[str]:
    with live_server(database_url, **server_env(settings, THREADLINE_REQUEST_BODY_TIMEOUT_S="1")) as base:
        yield base


async def test_a_sign_in_body_not_sent_in_time_is_a_408_page_and_the_connection_closed(impatient_server: str) -> None:
    slow = await slow_request(
        impatient_server,
        "POST",
        "/console/sign-in",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        sent=b"email=ada%40example.com&pass",
    )
    try:
        status, headers, body = await slow.response(within_s=ANSWER_WITHIN_S)
        assert status == 408, body
        assert headers["content-type"].startswith("text/html")
        assert "was not received within 1 seconds" in body.decode()
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers.get("connection") == "close"
        assert await slow.closed_by_server(within_s=ANSWER_WITHIN_S)
    finally:
        slow.close()
