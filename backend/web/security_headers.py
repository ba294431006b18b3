"""The security headers every response carries, and every Content-Security-Policy, built here.

One place builds them from the settings, so a policy change (e.g. who may frame the pages) is
made once: the API's policy (`api_csp`), the viewer page's (`page_csp`), and the headers the
request middleware adds to every response (`security_headers`).
"""

from __future__ import annotations

from typing import Any

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
}
HSTS = "max-age=63072000"


def frame_ancestors(settings: Any) -> str:
    """Who may frame MedSight's pages and responses: FRAME_ANCESTORS (huggingface.co on
    Spaces), else nobody."""
    return str(getattr(settings, "frame_ancestors", None) or "'none'")


def api_csp(settings: Any) -> str:
    """API responses load nothing and are framed by nobody."""
    return f"default-src 'none'; frame-ancestors {frame_ancestors(settings)}"


def page_csp(settings: Any) -> str:
    """The viewer page: scripts, styles and connections from this origin only."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # blob: the uploaded file and the heatmap, fetched with the caller's credentials.
            "img-src 'self' blob:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors(settings)}",
        )
    )


def security_headers(settings: Any, *, hsts: bool, csp: bool = True) -> list[tuple[bytes, bytes]]:
    """The headers the middleware adds to a response that lacks them, as raw ASGI pairs.

    `csp=False` for Swagger UI and ReDoc, whose pages need their inline script.
    """
    headers = dict(SECURITY_HEADERS)
    if frame_ancestors(settings).strip() != "'none'":
        # X-Frame-Options cannot name an origin: sent only when nobody may frame the pages.
        del headers["X-Frame-Options"]
    if csp:
        headers["Content-Security-Policy"] = api_csp(settings)
    if hsts:
        headers["Strict-Transport-Security"] = HSTS
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
