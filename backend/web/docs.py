"""OpenAPI fragments that routes declare: response headers, 304s, binary bodies."""

from __future__ import annotations

from typing import Any

ETAG_HEADER = {
    "ETag": {
        "description": "Strong validator of this representation; send it back in "
        "`If-None-Match` to get a 304 when nothing changed",
        "schema": {"type": "string"},
    }
}
CACHE_HEADER = {
    "Cache-Control": {"description": "How long caches may keep it", "schema": {"type": "string"}}
}


def etag_responses(
    media_type: str | None = None, description: str = "OK", *, binary: bool = False
) -> dict[int | str, dict[str, Any]]:
    """A 200 with ETag/Cache-Control headers and the 304 that `If-None-Match` can give."""
    ok: dict[str, Any] = {"description": description, "headers": {**ETAG_HEADER, **CACHE_HEADER}}
    if media_type is not None:
        schema = {"type": "string", "format": "binary"} if binary else {"type": "object"}
        ok["content"] = {media_type: {"schema": schema}}
    return {
        200: ok,
        304: {
            "description": "Not Modified: the `If-None-Match` ETag is current (no body)",
            "headers": ETAG_HEADER,
        },
    }


def location_response(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    """A response that names where to go next in `Location`."""
    return {
        status: {
            "description": description,
            "headers": {
                "Location": {
                    "description": "Where to poll next (the task's status)",
                    "schema": {"type": "string"},
                }
            },
        }
    }
