"""API-key scopes, and which scope each /api/v1 operation needs when called with an API key."""

from __future__ import annotations

from typing import Literal

Scope = Literal["analyze:write", "analyze:read", "chat", "reports"]
ALL_SCOPES: tuple[Scope, ...] = ("analyze:write", "analyze:read", "chat", "reports")

# Path segments that name a domain; checked before the /analyze method rule, so a report under
# /api/v1/analyze/... still needs `reports`.
_SEGMENT_SCOPES: dict[str, Scope] = {
    "report": "reports",
    "reports": "reports",
    "fhir": "reports",
    "pdf": "reports",
    "chat": "chat",
    "transcript": "chat",
    "transcripts": "chat",
    "transcribe": "chat",
    "speech": "chat",
}


def required_scope(method: str, route_path: str) -> Scope | None:
    """The scope an API key needs for this route template; None: API keys are not accepted."""
    segments = [s for s in route_path.split("/") if s and not s.startswith("{")]
    for segment in segments:
        if segment in _SEGMENT_SCOPES:
            return _SEGMENT_SCOPES[segment]
    if route_path.startswith(("/api/v1/analyze", "/api/v1/dicomweb")) or (
        route_path == "/api/v1/users/me/sessions"
    ):
        return "analyze:read" if method.upper() in {"GET", "HEAD"} else "analyze:write"
    return None
