"""Serve the viewer page at `/` and its files under `/viewer/` (no logic of its own).

The page is plain HTML, CSS and ES modules shipped inside the package (no build step, no CDN).
Its Content-Security-Policy allows scripts, styles and connections from this origin only: no
inline script or style, so an injected string cannot run. What the page must know before its
first request (is Google sign-in configured, may it work anonymously, the upload limits) it
reads from `<meta>` tags filled in here; everything else comes from the JSON API.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from backend.accounts.caller import auth_required
from backend.accounts.google import check_return_to
from backend.accounts.google import is_configured as google_configured
from backend.config import Settings
from backend.errors import AppError, NotFoundError
from backend.web.deps import SettingsDep
from backend.web.etags import not_modified
from backend.web.security_headers import page_csp

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _asset(body: bytes, media_type: str) -> Asset:
    return Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@cache
def _assets() -> dict[str, Asset]:
    """Every file of `backend/viewer/static`, read once per process."""
    folder = resources.files("backend.viewer").joinpath("static")
    found = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _MEDIA_TYPES:
            found[entry.name] = _asset(entry.read_bytes(), _MEDIA_TYPES[suffix])
    return found


def _google_offered(settings: Settings, page_url: str) -> bool:
    """Google sign-in is configured and may send its one-time code back to this page."""
    if not google_configured(settings):
        return False
    try:
        check_return_to(settings, page_url)
    except AppError:
        return False  # the page's origin is not in ALLOWED_ORIGINS
    return True


def page_config(settings: Settings, page_url: str) -> dict[str, str]:
    """What the page reads from its `<meta name="medsight:...">` tags."""
    return {
        "google": "on" if _google_offered(settings, page_url) else "off",
        "anonymous": "refused" if auth_required(settings) else "allowed",
        "max-upload-mb": f"{settings.max_upload_size_mb:g}",
        "max-symptoms": str(settings.max_symptoms_chars),
    }


@cache
def _page(google: str, anonymous: str, max_upload_mb: str, max_symptoms: str) -> Asset:
    template = _assets()["index.html"]
    values = {
        "google": google,
        "anonymous": anonymous,
        "max-upload-mb": max_upload_mb,
        "max-symptoms": max_symptoms,
    }
    text = template.body.decode()
    for key, value in values.items():
        text = text.replace(f"{{{{{key}}}}}", html.escape(value, quote=True))
    return _asset(text.encode(), template.media_type)


def _respond(request: Request, asset: Asset, **headers: str) -> Response:
    common = {"ETag": asset.etag, "Cache-Control": "no-cache", **headers}
    if not_modified(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=common)
    return Response(asset.body, media_type=asset.media_type, headers=common)


@router.get("/")
async def index(request: Request, settings: SettingsDep) -> Response:
    """The viewer page (its strict CSP replaces the API's `default-src 'none'`)."""
    config = page_config(settings, str(request.base_url))
    asset = _page(
        config["google"], config["anonymous"], config["max-upload-mb"], config["max-symptoms"]
    )
    return _respond(request, asset, **{"Content-Security-Policy": page_csp(settings)})


@router.get("/viewer/{name}")
async def static_file(request: Request, name: Annotated[str, Path(max_length=64)]) -> Response:
    asset = _assets().get(name) if name != "index.html" else None
    if asset is None:
        raise NotFoundError("No such file.", code="not_found")
    return _respond(request, asset)
