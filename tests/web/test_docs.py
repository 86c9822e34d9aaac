"""/docs works with no network: Swagger UI's files come from the package, and the wheel carries them."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from threadline.web.docs import ASSETS_DIR, SWAGGER_UI_VERSION

ROOT = Path(__file__).resolve().parents[2]
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", html)


async def test_docs_page_loads_everything_from_this_server(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html), html  # no CDN, no validator, no other host
    assert not re.search(r"""["'(]//""", html), html  # nor a protocol-relative URL
    refs = _references(html)
    assert "/openapi.json" in refs
    assets = [ref for ref in refs if ref != "/openapi.json"]
    assert sorted(ref.split("?")[0].rsplit("/", 1)[1] for ref in assets) == sorted(ASSETS), refs
    assert "validatorUrl" in html and '"validatorUrl": null' in html
    for ref in assets:
        assert ref.startswith("/docs/static/"), ref
        name = ref.split("?")[0].rsplit("/", 1)[1]
        asset = await client.get(ref)
        assert asset.status_code == 200, (ref, asset.text[:200])
        assert asset.headers["content-type"].split(";")[0] == ASSETS[name]
        assert asset.content == (ASSETS_DIR / name).read_bytes()
        assert asset.headers["etag"]  # browsers revalidate instead of fetching 1.8 MB again
        again = await client.get(ref, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304
    assert SWAGGER_UI_VERSION in html  # the script's URL changes with the version, so caches do not mix them


async def test_docs_assets_are_public_and_their_misses_are_404s(client: httpx.AsyncClient) -> None:
    # No key: the page and its files are as public as /openapi.json.
    assert (await client.get("/docs/static/swagger-ui.css")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    for path in ("/docs/static/nothing.js", "/docs/static/../../app.py", "/docs/static/README.md/x"):
        r = await client.get(path)
        assert r.status_code == 404, (path, r.text[:200])
    assert (await client.get("/redoc")).status_code == 404  # ReDoc, which would need a CDN, is not served


def test_the_vendored_files_are_the_pinned_release_with_its_licence() -> None:
    readme = (ASSETS_DIR / "README.md").read_text()
    assert f"**{SWAGGER_UI_VERSION}**" in readme
    for name in ASSETS:
        digest = hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest()
        assert f"`{name}` | `{digest}`" in readme, name
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()
    assert (ASSETS_DIR / "NOTICE").read_text().startswith("swagger-ui")


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("THREADLINE_TEST_DATABASE_URL")), reason="the same on every database")
def test_a_built_wheel_carries_swagger_ui(tmp_path: Path) -> None:
    # A copy of what the build reads, so that the build leaves nothing in the work tree.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("threadline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in [*ASSETS, "LICENSE", "NOTICE"]:
        assert f"threadline/web/static/swagger-ui/{name}" in names, name
