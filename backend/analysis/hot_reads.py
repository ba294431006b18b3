"""Signed-in reads of a cached result, answered below the framework's routing.

`GET /api/v1/analyze/result/{id}` is what clients poll and re-read. When everything the route
would need is already in this process's memory, solving its dependencies, building a request
object and a session is most of the cost of the read (bench/capacity.py: about 1.2 ms of CPU per
read against 0.19 ms for a bare hello-world). This layer sits innermost, inside the request,
CORS and body-size middleware, and answers such a read itself when, and only when:

- the request is a GET of exactly that path, with no query parameter but `heatmap`;
- it carries `Authorization: Bearer <token>` (no API key) whose claims the auth cache decoded
  and whose verification it holds within `AUTH_CACHE_TTL_S` (so the signature, expiry and
  revocation checks the route relies on were made, and are invalidated the same way);
- the result cache holds that form of the result for that caller, confirmed against the
  database within its revalidation window (the condition under which the route itself skips
  the database).

It then does what the route does: the read is audited (`result.read`, on disk before the
answer, through the same spool), `If-None-Match` gets a 304, and the body and headers are the
same bytes. Every other request (no or unknown credential, API key, anonymous caller, a miss, a
stale entry, an audit spool that refuses) goes to the route unchanged, which decides 401, 404,
409 or 503 as before. `tests/integration/test_hot_reads.py` compares both paths byte for byte.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.accounts.auth_cache import AuthCache
from backend.analysis.result_cache import CACHE_CONTROL, ResultCache, variant_key
from backend.audit.spool import AuditSpool
from backend.config import Settings
from backend.contract.enums import HeatmapMode
from backend.observability.middleware import RouteLabel
from backend.web.client_ip import resolve_client_ip
from backend.web.etags import not_modified

PREFIX = "/api/v1/analyze/result/"
ROUTE_PATH = PREFIX + "{session_id}"
_MODES = {mode.value: mode for mode in HeatmapMode}
_CACHE_CONTROL = CACHE_CONTROL.encode("latin-1")
_ROUTE = RouteLabel(ROUTE_PATH)


class HotResultReads:
    """Answer a signed-in, cached result read directly; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._state: object = None
        self._parts: tuple[Settings, AuthCache, ResultCache, AuditSpool] | None = None
        self.answered = 0  # reads this layer answered (the rest went to the route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
            or not await self._answer(scope, send)
        ):
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        """Send the answer and return True, or return False having sent nothing."""
        session_id: str = scope["path"][len(PREFIX) :]
        if not session_id or "/" in session_id:
            return False
        mode = HeatmapMode.INLINE
        query: bytes = scope.get("query_string", b"")
        if query:
            params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if len(params) != 1 or params[0][0] != "heatmap" or params[0][1] not in _MODES:
                return False
            mode = _MODES[params[0][1]]
        authorization = if_none_match = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                return False  # the route decides (scopes, or 401 when sent with a token)
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return False
        parts = self._resolve(scope)
        if parts is None:
            return False
        settings, auth_cache, result_cache, spool = parts
        token = authorization[7:].decode("latin-1").strip()
        claims = auth_cache.peek_claims(token)
        if claims is None:
            return False
        identity = auth_cache.get(("token", claims.subject, claims.family_id))
        if identity is None:
            return False
        key = variant_key(session_id, None if mode is HeatmapMode.INLINE else mode.value)
        cached = result_cache.fresh(key, identity.user_id)
        if cached is None:
            return False
        client = scope.get("client")
        ip = resolve_client_ip(client[0] if client else None, forwarded, settings.trusted_proxies)
        try:
            await spool.append(
                actor_id=identity.user_id,
                action="result.read",
                resource_type="analysis",
                resource_id=session_id,
                client_ip=ip,
            )
        except Exception:  # noqa: BLE001 - the route refuses the same read with its problem
            return False
        scope["route"] = _ROUTE  # the metric's route label, as the router would set it
        self.answered += 1
        etag = cached.etag.encode("latin-1")
        if not_modified(if_none_match, cached.etag):
            headers = [(b"etag", etag), (b"cache-control", _CACHE_CONTROL)]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": list(cached.response_headers()),  # outer middleware appends to it
            }
        )
        await send({"type": "http.response.body", "body": cached.body})
        return True

    def _resolve(self, scope: Scope) -> tuple[Settings, AuthCache, ResultCache, AuditSpool] | None:
        """The app's parts this needs, once the lifespan has made them (None before)."""
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "medsight", None)
        if state is None:
            return None
        if state is not self._state:  # first request, or the app was started again
            parts = (
                state.find(Settings),
                state.find(AuthCache),
                state.find(ResultCache),
                state.find(AuditSpool),
            )
            if any(part is None for part in parts):
                return None
            self._state, self._parts = state, parts
        return self._parts
