"""The viewer page at `/`: served with a strict CSP, its files shipped and typed, its settings in
meta tags, and no markup or code that would need 'unsafe-inline' or 'unsafe-eval'.

The page's behaviour in a real browser is tested in tests/browser/."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from backend.config import Settings
from backend.main import create_app
from backend.web.security_headers import page_csp
from tests.conftest import REPO, make_settings
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for

STATIC = REPO / "backend" / "viewer" / "static"
HOOKS = [
    "upload-input",
    "symptoms-input",
    "analyze-submit",
    "progress",
    "result-risk",
    "result-score",
    "result-heatmap",
    "result-regions",
    "chat-input",
    "chat-send",
    "chat-answer",
    "chat-sources",
    "report-pdf",
    "history-list",
]


def meta(html: str) -> dict[str, str]:
    return dict(re.findall(r'<meta name="medsight:([a-z-]+)" content="([^"]*)">', html))


async def test_the_page_is_served_with_a_strict_csp_and_revalidates(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert csp == page_csp(settings)
    assert csp.endswith("; frame-ancestors 'none'")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert "unsafe" not in csp and "http" not in csp  # no inline, no eval, no other origin
    assert response.headers["x-frame-options"] == "DENY"
    assert meta(response.text) == {
        "google": "off",
        "anonymous": "allowed",
        "max-upload-mb": "20",
        "max-symptoms": "5000",
    }
    again = await client.get("/", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content
    # The API keeps its own policy.
    health = await client.get("/api/v1/health")
    assert health.headers["content-security-policy"].startswith("default-src 'none'")


async def test_every_file_the_page_loads_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="(/viewer/[^"]+)"', html))
    for script in STATIC.glob("*.js"):
        wanted |= {
            f"/viewer/{name}" for name in re.findall(r'from "\./([a-z-]+\.js)"', script.read_text())
        }
    assert {"/viewer/app.js", "/viewer/style.css", "/viewer/api.js"} <= wanted
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(wanted):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(types[Path(path).suffix]), path
        assert response.content == (STATIC / Path(path).name).read_bytes()
    for bad in ("nope.js", "index.html", "..%2Fapp.js", "notes.txt"):
        bad = f"/viewer/{bad}"
        assert_problem(await client.get(bad), 404)


def test_no_markup_or_code_needs_unsafe_inline_or_eval() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle=", html), "inline style attribute"
    assert not re.search(r"<style", html), "inline style element"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "http://" not in html.replace('"http://www.w3.org/2000/svg"', "")
    for script in STATIC.glob("*.js"):
        code = script.read_text()
        for risky in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            'setAttribute("style"',
        ):
            assert risky not in code, f"{script.name} uses {risky}"
        # Nothing from another origin is loaded (links to sources open in a new tab only).
        for url in re.findall(r"https?://[^\s\"'`]+", code):
            assert url.startswith(
                ("https://pubmed.ncbi.nlm.nih.gov/", "http://www.w3.org/2000/svg")
            ), url


def test_every_automation_hook_is_on_the_page() -> None:
    text = "\n".join(p.read_text() for p in STATIC.iterdir() if p.suffix in {".html", ".js"})
    missing = [
        hook
        for hook in HOOKS
        if f'data-testid="{hook}"' not in text
        and f'"data-testid": "{hook}"' not in text
        and f'testid = "{hook}"' not in text
    ]
    assert not missing


def test_the_wheel_ships_every_page_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["backend.viewer"]
    files = [p.name for p in STATIC.iterdir() if p.is_file()]
    assert files and all(any(fnmatch(f"static/{f}", pat) for pat in patterns) for f in files)


@pytest.fixture
async def strict_app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        auth_required=True,
        google_client_id="client",
        google_client_secret="secret",  # noqa: S106 - a test value
        allowed_origins=["http://testserver"],
        max_upload_size_mb=7.5,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_the_page_says_when_sign_in_is_required_and_google_is_offered(
    strict_app: FastAPI,
) -> None:
    async with client_for(strict_app) as client:
        response = await client.get("/")
        assert meta(response.text) == {
            "google": "on",
            "anonymous": "refused",
            "max-upload-mb": "7.5",
            "max-symptoms": "5000",
        }
        # The page itself needs no credentials; the API it calls does.
        assert_problem(await client.get("/api/v1/users/me/sessions"), 401)
        assert_problem(await client.post("/api/v1/analyze"), 401)


async def test_google_is_not_offered_when_the_code_could_not_come_back_to_the_page(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        google_client_id="client",
        google_client_secret="secret",  # noqa: S106
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application), client_for(application) as client:
        assert meta((await client.get("/")).text)["google"] == "off"
