"""The viewer in a real browser: Debian's Chromium driven by Playwright, against the real app.

One server (uvicorn, real models, a small chat corpus, Google sign-in through the local fake
OIDC provider) and one browser serve every browser test of the module. Both are module-scoped on
purpose: Playwright's sync API keeps its event loop marked as running on the main thread while it
is open, so it must close before the rest of the suite (which calls `asyncio.run`) goes on.
Each test gets a fresh browser context whose requests may reach 127.0.0.1 only, and fails on any
console error or uncaught exception the page logs (a test that expects one names it).

Screenshots go to `$MEDSIGHT_TEST_OUTPUT/browser/` (default `test-output/browser/`); with
`MEDSIGHT_UPDATE_SCREENSHOTS=1` the key ones are also written, small, to `docs/screenshots/`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import PG_URL, REPO
from tests.e2e.chat_support import corpus_slice, wait_corpus
from tests.e2e.server import Server, free_port, make_env
from tests.fakes.oidc import CLIENT_ID, CLIENT_SECRET, FakeOIDCProvider
from tests.unit.speech.audio_fixtures import ESPEAK, speak

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("MEDSIGHT_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("MEDSIGHT_TEST_OUTPUT", REPO / "test-output")) / "browser"
DOCS_SHOTS = REPO / "docs" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DICTATION = "I have had a dry cough and a fever for three days"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"Chromium must be installed in CI (.ci/run): {CHROMIUM}", pytrace=False)
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[FakeOIDCProvider]:
    provider = FakeOIDCProvider(
        user={
            "sub": "google-viewer-1",
            "email": "grace@example.org",
            "email_verified": True,
            "name": "Grace Hopper",
        }
    ).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def viewer_server(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: FakeOIDCProvider
) -> Iterator[Server]:
    """The app as `make run` serves it, plus a chat corpus slice and Google (faked at the wire)."""
    data_dir = tmp_path_factory.mktemp("viewer")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    extra = {
        "CORPUS_AUTOBUILD": "true",
        "CORPUS_DATA_DIR": str(corpus_slice(data_dir / "corpus")),
        "GEMINI_API_KEY": "",
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_DISCOVERY_URL": oidc_provider.discovery_url,
        "ALLOWED_ORIGINS": url,
        "RATE_LIMIT_LOGIN": "1000/minute",
    }
    if PG_URL:
        extra["DATABASE_URL"] = PG_URL
    server = Server(url=url, port=port, data_dir=data_dir, env=make_env(data_dir, **extra))
    server.start()
    try:
        wait_corpus(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    args = [
        "--no-sandbox",
        # A microphone that "hears" a spoken sentence, once, for the dictation test.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ]
    if ESPEAK is not None:
        wav = speak(DICTATION, tmp_path_factory.mktemp("audio") / "dictation.wav")
        args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@dataclass
class Viewer:
    """One browser context and page on the viewer, with what the page logged."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    width: int = 1280

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)

    def expect_error(self, pattern: str) -> None:
        """A console error this test provokes on purpose (e.g. the 415 of a refused upload)."""
        self.expected.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]

    def snap(self, name: str, *, key: bool = False) -> Path:
        """A screenshot of the whole page (the viewport grown to it, so the disclaimer sits at
        the bottom where a person sees it); `key` ones also go to docs/screenshots/."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        height = self.page.evaluate("() => document.documentElement.scrollHeight")
        size = self.page.viewport_size
        self.page.set_viewport_size({"width": size["width"], "height": max(height, 200)})
        self.page.screenshot(path=str(path))
        self.page.set_viewport_size(size)
        if key and os.environ.get("MEDSIGHT_UPDATE_SCREENSHOTS") == "1":
            save_small(path, DOCS_SHOTS / path.name)
        return path

    def axe(self, state: str) -> list[dict[str, Any]]:
        """Serious and critical accessibility violations of what is on screen now (axe-core)."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated by the DevTools protocol, which the page's CSP does not govern.
            self.page.evaluate(AXE.read_text(encoding="utf-8"))
        report = self.page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
            }"""
        )
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / f"axe-{state}.json").write_text(json.dumps(report, indent=2))
        return [v for v in report if v["impact"] in {"serious", "critical"}]


def save_small(source: Path, target: Path) -> None:
    """A 256-colour copy at most 900 px wide for the README (tens of KB, not hundreds).

    The palette is 160 greys (the radiograph keeps its tones) plus the page's 96 main colours.
    """
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        small = image.convert("RGB")
    if small.width > 900:
        small = small.resize((900, round(small.height * 900 / small.width)), Image.LANCZOS)
    colours = small.quantize(colors=96, method=Image.Quantize.FASTOCTREE).getpalette() or []
    greys = [round(i * 255 / 159) for i in range(160) for _ in range(3)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(greys + colours[: 96 * 3])
    small.quantize(palette=palette, dither=Image.Dither.NONE).save(target, optimize=True)


def new_viewer(browser: Any, base_url: str, width: int = 1280, height: int = 900) -> Viewer:
    context = browser.new_context(
        viewport={"width": width, "height": height},
        accept_downloads=True,
        permissions=["microphone"],
    )
    page = context.new_page()
    viewer = Viewer(page=page, base_url=base_url, width=width)
    host = urlsplit(base_url).hostname

    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname in {host, "127.0.0.1"}:
            route.continue_()
        else:
            viewer.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page.on("console", lambda m: m.type == "error" and viewer.errors.append(m.text))
    page.on("pageerror", lambda e: viewer.errors.append(f"uncaught: {e}"))
    page.set_default_timeout(30_000)
    return viewer


@pytest.fixture
def viewer(browser: Any, viewer_server: Server) -> Iterator[Viewer]:
    v = new_viewer(browser, viewer_server.url)
    yield v
    errors = v.unexpected_errors()
    v.page.context.close()
    assert not errors, f"the page logged errors: {errors}"
    assert not v.blocked, f"the page asked for other origins: {v.blocked}"


@pytest.fixture
def phone(browser: Any, viewer_server: Server) -> Iterator[Viewer]:
    """A 390 × 844 screen (a small phone)."""
    v = new_viewer(browser, viewer_server.url, width=390, height=844)
    yield v
    errors = v.unexpected_errors()
    v.page.context.close()
    assert not errors, f"the page logged errors: {errors}"
