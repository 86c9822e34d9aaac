"""The browser harness: a real server process on the test database, and Debian's Chromium driven by Playwright.

Fixtures (in tests/console/conftest.py) built on these:

- ``console_server``: the base URL of a ``threadline`` server process (uvicorn on ``create_app``, a free port,
  a data dir of its own, the test run's database and secret key; no workers), for the test module. A test
  that needs workers or other settings starts its own with ``console_server_process(..., THREADLINE_X=...)``.
- ``chromium``: one headless Chromium for the whole run, launched from ``/usr/bin/chromium`` (never a
  downloaded browser). Missing: the tests are skipped, or fail when ``THREADLINE_REQUIRE_BROWSER=1`` (CI).
- ``page``: a fresh browser context (no cookies) and page per test, 1280x800, that records what the page
  logs: ``page_errors(page)`` lists console errors (a CSP violation among them) and uncaught exceptions.
- ``screenshot(page, name)``: saves ``tests/console/artifacts/<name>.png`` and returns its path.
- ``sign_in_in_browser(page, base, account)``: the sign-in form filled and sent as a person does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.livesrv import live_server

CHROMIUM = os.environ.get("THREADLINE_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_ENV = "THREADLINE_REQUIRE_BROWSER"
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_ERRORS = "_threadline_errors"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def console_server_process(database_url: str, settings: Any, **env: str) -> Iterator[str]:
    """A server process with the console, on ``database_url`` (migrated), the run's secret key and a data dir
    of its own; yields its base URL."""
    assert settings.database.secret_keys is not None
    data_dir = tempfile.mkdtemp(prefix="threadline-console-")
    try:
        with live_server(
            database_url,
            THREADLINE_DATA_DIR=data_dir,
            THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value(),
            THREADLINE_CONSOLE_ENABLED="true",
            **env,
        ) as base:
            yield base
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def watch(page: Any) -> None:
    """Record the page's console errors and uncaught exceptions (``page_errors``)."""
    errors: list[str] = []
    setattr(page, _ERRORS, errors)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))


def page_errors(page: Any) -> list[str]:
    errors: list[str] = getattr(page, _ERRORS)
    return list(errors)


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # caret="initial": hiding the caret leaves style="" on the page's inputs, which htmx then copies onto swapped
    # ones (a CSP violation that is the screenshot's doing, not the console's).
    await page.screenshot(path=str(path), full_page=False, caret="initial")
    return path


async def sign_in_in_browser(page: Any, base: str, email: str, password: str) -> None:
    """Open the console, get sent to sign-in, fill the form and send it; lands on the inbox."""
    await page.goto(f"{base}/console")
    await page.wait_for_url(f"{base}/console/sign-in**")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/console/inbox")
