"""Server-sent events: one event is `event: <name>` and one `data:` line of JSON."""

from __future__ import annotations

import json
from typing import Any

HEARTBEAT = b": ping\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def sse_response_doc(description: str, events: dict[str, type[Any]]) -> dict[str, Any]:
    """OpenAPI for a `text/event-stream` 200: each event is one of the named types.

    As OpenAPI 3.2 describes streams, the schema is that of ONE event: `event` names its type and
    `data` is a JSON text whose shape is the named component (`contentSchema`).
    """
    names = ", ".join(f"`{name}`" for name in events)
    variants = [
        {
            "type": "object",
            "title": model.__name__,
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"},
                },
            },
        }
        for name, model in events.items()
    ]
    return {
        "description": f"{description} Events: {names} (and `: ping` comments as heartbeats).",
        "content": {"text/event-stream": {"schema": {"oneOf": variants}}},
    }
