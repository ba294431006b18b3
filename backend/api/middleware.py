"""Pure ASGI middleware: request ids, access logs, body size limit, security headers."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.logs import request_id_var

logger = logging.getLogger("medsight.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
}
# Swagger UI needs its inline script and CDN-free assets; API responses need nothing.
_API_CSP = "default-src 'none'; frame-ancestors {ancestors}"


class RequestContextMiddleware:
    """Give every request an id (echoed as X-Request-ID), log it, and add security headers."""

    def __init__(
        self, app: ASGIApp, *, hsts: bool = False, frame_ancestors: str = "'none'"
    ) -> None:
        self.app = app
        self.hsts = hsts
        # FRAME_ANCESTORS (huggingface.co on Spaces); X-Frame-Options cannot name an origin, so
        # it is sent only when no one may frame the pages.
        self.csp = _API_CSP.format(ancestors=frame_ancestors)
        self.frame_deny = frame_ancestors.strip() == "'none'"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        path = scope.get("path", "")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for key, value in SECURITY_HEADERS.items():
                    if key != "X-Frame-Options" or self.frame_deny:
                        headers.setdefault(key, value)
                if not path.startswith(("/docs", "/redoc")):
                    headers.setdefault("Content-Security-Policy", self.csp)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=63072000")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status_holder["status"],
                    "duration_ms": round(elapsed_ms, 2),
                },
            )
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Reject bodies over the limit with 413, by Content-Length or while streaming.

    `path_limits` maps path prefixes to their own limit (e.g. DICOMweb, whose requests carry
    whole studies).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next(
            (n for prefix, n in self.path_limits.items() if path.startswith(prefix)),
            self.max_bytes,
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(scope, send, limit)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Tell the app the client went away; we answer 413 ourselves below.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own reply to the cut-off body is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_413(scope, send, limit)


def _too_large_text(limit: int) -> str:
    return f"The request body exceeds the limit of {limit / (1024 * 1024):.1f} MB."


async def _send_413(scope: Scope, send: Send, limit: int) -> None:
    import json

    state = scope.get("state", {})
    body = json.dumps(
        {
            "type": "urn:medsight:problem:payload_too_large",
            "title": "Payload Too Large",
            "status": 413,
            "detail": _too_large_text(limit),
            "instance": scope.get("path", ""),
            "code": "payload_too_large",
            "request_id": state.get("request_id"),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
