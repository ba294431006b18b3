"""A local HTTP server speaking Gemini's REST streaming protocol, for tests.

`POST /{v1|v1beta}/models/{model}:streamGenerateContent?alt=sse` with the key in
`x-goog-api-key`, answered with server-sent events `data: {"candidates": [...]}`. Behaviour per
request is scripted: a normal stream, an HTTP error (429, 500, ...), a stall before or after the
first chunk. Runs in its own thread and event loop, so sync and async tests can both use it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(streamGenerateContent|generateContent)$")
_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Script:
    """What the server does for one request."""

    chunks: list[str] = field(default_factory=lambda: ["Hello from the fake Gemini."])
    status: int = 200
    stall_before_s: float = 0.0  # after the headers, before the first chunk
    stall_after_first_s: float = 0.0  # after the first chunk
    chunk_delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class FakeGeminiServer:
    """`with FakeGeminiServer() as fake: fake.base_url ...`; set `fake.script` or `fake.queue`."""

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.script = Script()
        self.queue: list[Script] = []  # consumed first, one per request
        self.requests: list[Recorded] = []
        self.completed = 0
        self.disconnects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text_of(self, i: int = -1) -> str:
        """All text the client sent in request `i` (system instruction and contents)."""
        body = self.requests[i].body
        texts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
        sys = body.get("systemInstruction") or body.get("system_instruction") or {}
        texts += [p.get("text", "") for p in sys.get("parts", [])]
        return "\n".join(texts)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = _PATH.match(request.path)
        body = await request.json() if request.can_read_body else {}
        self.requests.append(
            Recorded(request.path, dict(request.query), dict(request.headers), body)
        )
        script = self.queue.pop(0) if self.queue else self.script
        if match is None:
            return _error(404, "not found")
        if request.headers.get("x-goog-api-key") != self.api_key:
            return _error(400, "API key not valid. Please pass a valid API key.")
        if script.status != 200:
            return _error(script.status, "scripted failure")
        try:
            return await self._stream(request, script, match.group(2))
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1  # the client went away mid-stream
            raise

    async def _stream(self, request: web.Request, script: Script, model: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if script.stall_before_s:
            await asyncio.sleep(script.stall_before_s)
        for i, text in enumerate(script.chunks):
            last = i == len(script.chunks) - 1
            payload: dict[str, Any] = {
                "candidates": [
                    {
                        "content": {"parts": [{"text": text}], "role": "model"},
                        "index": 0,
                        **({"finishReason": "STOP"} if last else {}),
                    }
                ],
                "modelVersion": model,
                "responseId": "fake-response",
            }
            if last:
                payload["usageMetadata"] = {
                    "promptTokenCount": 42,
                    "candidatesTokenCount": len(" ".join(script.chunks).split()),
                    "totalTokenCount": 42 + len(" ".join(script.chunks).split()),
                }
            await resp.write(f"data: {json.dumps(payload)}\r\n\r\n".encode())
            if i == 0 and script.stall_after_first_s:
                await asyncio.sleep(script.stall_after_first_s)
            elif script.chunk_delay_s:
                await asyncio.sleep(script.chunk_delay_s)
        await resp.write_eof()
        self.completed += 1
        return resp

    def __enter__(self) -> FakeGeminiServer:
        self._thread = threading.Thread(target=self._serve, name="fake-gemini", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Gemini server did not start")
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server  # noqa: SLF001 - the only way to read the bound port
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        # Stalled handlers are still sleeping: cancel them so shutdown is quiet and quick.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}},
        status=status,
    )
