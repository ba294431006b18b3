"""Pure ASGI middleware: one pass per request for its id, headers, metrics and access log.

`RequestMiddleware` is the outermost layer and the only one every request crosses: a single
`send` wrapper sets the request id and the security headers, times the request for the latency
histogram and writes the access log line. (Four layers had each wrapped `send` and copied the
scope; the request id, headers, metric and log line are the same.) `BodySizeLimitMiddleware`
runs inside it, so a 413 has a request id and is counted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.logs import request_id_var
from backend.observability import Metrics
from backend.observability.middleware import route_template
from backend.web.ids import unique_hex
from backend.web.security_headers import security_headers

logger = logging.getLogger("medsight.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DOCS = ("/docs", "/redoc")  # Swagger UI and ReDoc need their inline script: no API CSP


class AccessLog:
    """Which requests get an access log line: all of them up to `full_per_s` a second, then one
    successful request in `sample_every` (its line carries `sample_every`, so counts scale
    back); a 4xx/5xx answer or a request slower than `slow_ms` is always logged.

    Exact request counts and latencies are the metrics' job (`/metrics` counts every request).
    """

    def __init__(
        self,
        *,
        full_per_s: int,
        sample_every: int,
        slow_ms: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.full_per_s = full_per_s
        self.sample_every = max(1, sample_every)
        self.slow_ms = slow_ms
        self._second = 0
        self._in_second = 0
        self._lock = threading.Lock()  # an app may be served from several threads (tests)

    def sample(self, status: int, elapsed_ms: float) -> int | None:
        """None: no line; else the line's sampling factor (1: every such request is logged)."""
        if status >= 400 or elapsed_ms >= self.slow_ms:
            return 1
        second = int(self.clock())
        with self._lock:
            if second != self._second:
                self._second, self._in_second = second, 0
            self._in_second += 1
            count = self._in_second
        if count <= self.full_per_s:
            return 1
        return self.sample_every if count % self.sample_every == 0 else None


class RequestMiddleware:
    """Give every request an id (echoed as X-Request-ID), security headers, a latency metric
    labelled by route template, and an access log line (sampled at high rates)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Any,
        metrics: Metrics | None = None,
        hsts: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.headers = security_headers(settings, hsts=hsts)
        self.docs_headers = security_headers(settings, hsts=hsts, csp=False)
        self.access = AccessLog(
            full_per_s=settings.access_log_full_per_s,
            sample_every=settings.access_log_sample_every,
            slow_ms=settings.access_log_slow_ms,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not _SAFE_REQUEST_ID.match(request_id):
            request_id = unique_hex()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        extra = self.docs_headers if path.startswith(_DOCS) else self.headers
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.append(rid_header)
                headers.extend(pair for pair in extra if pair[0] not in present)
                message["headers"] = headers
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            if metrics is not None:
                metrics.http_in_flight.dec()
                metrics.observe_request(route_template(scope), scope["method"], status, elapsed)
            elapsed_ms = elapsed * 1000
            if logger.isEnabledFor(logging.INFO):
                factor = self.access.sample(status, elapsed_ms)
                if factor is not None:
                    fields: dict[str, Any] = {
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed_ms, 2),
                    }
                    if factor > 1:
                        fields["sample_every"] = factor
                    logger.info("request", extra=fields)
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
        chunked = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(scope, send, limit)
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and scope.get("http_version") in {"1.0", "1.1"}:
            # HTTP/1 frames the body by Content-Length (checked above) or, without either
            # header, has none: only a chunked body can outgrow the limit while streaming.
            await self.app(scope, receive, send)
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
