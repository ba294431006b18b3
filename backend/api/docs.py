"""/docs (Swagger UI) and /redoc served with their scripts from this app, never from a CDN.

The assets come from the `fastapi-offline` package, which bundles Swagger UI and ReDoc; on a
hospital network without internet access the pages still work. DOCS_ENABLED switches them (and
/openapi.json) on in production.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

# Scripts, styles and images from this origin only: a CDN or tracker the bundles might reach for
# (ReDoc's footer logo does) is refused by the browser before any request leaves. The pages'
# own inline bootstrap script and styles need 'unsafe-inline'; they carry no user content.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "frame-ancestors {ancestors}"
)
ASSETS_URL = "/docs/assets"  # under /docs: the page CSP of the API does not apply there
FAVICON_URL = "/viewer/favicon.svg"


def assets_dir() -> Path | None:
    """The folder holding swagger-ui-bundle.js, swagger-ui.css and redoc.standalone.js."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI, frame_ancestors: str = "'none'") -> None:
    """Add /docs, /docs/oauth2-redirect and /redoc with locally served assets."""
    folder = assets_dir()
    if folder is None:
        logger.warning("fastapi-offline is not installed: /docs and /redoc are off")
        return
    app.mount(ASSETS_URL, StaticFiles(directory=folder), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_url = "/docs/oauth2-redirect"
    headers = {"Content-Security-Policy": DOCS_CSP.format(ancestors=frame_ancestors)}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
        )
        page.headers.update(headers)
        return page

    @app.get(oauth2_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=FAVICON_URL,
            with_google_fonts=False,
        )
        page.headers.update(headers)
        return page
