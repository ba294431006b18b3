"""Anonymous identities: each anonymous client (development only) is its own resource owner.

Where anonymous use is allowed (never in production), a client that sends no credentials is
given an identity on first use: a random id signed with SECRET_KEY, set as the `medsight_anon`
cookie (HttpOnly, SameSite=Strict) and echoed in the `X-Anonymous-Id` response header.
Analyses, Idempotency-Keys and chat conversations belong to that identity, so another client
can neither read them nor replay them. Clients without a cookie jar (curl, scripts) ask for one
with `POST /api/v1/auth/anonymous` and send it back as the `X-Anonymous-Id` header.
"""

from __future__ import annotations

import base64
import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.config import Settings

COOKIE = "medsight_anon"
HEADER = "X-Anonymous-Id"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_PREFIX = "anon1"
_ISSUED = "anonymous_issued"  # request.state key: a token issued while serving this request


def _sign(settings: Settings, anon_id: str) -> str:
    mac = hmac.new(settings.secret_key.encode("utf-8"), b"anonymous:" + anon_id.encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def issue(settings: Settings) -> tuple[str, str]:
    """A new identity: (id, token). The token is what the client keeps and sends back."""
    anon_id = secrets.token_urlsafe(16)
    return anon_id, token_for(settings, anon_id)


def token_for(settings: Settings, anon_id: str) -> str:
    return f"{_PREFIX}.{anon_id}.{_sign(settings, anon_id)}"


def verify(settings: Settings, token: str | None) -> str | None:
    """The id inside a token this server signed, else None."""
    if not token or len(token) > 200:
        return None
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1]:
        return None
    if not hmac.compare_digest(parts[2], _sign(settings, parts[1])):
        return None
    return parts[1]


def owner_key(anon_id: str) -> str:
    return "anon:" + anon_id


def remember_issued(state: object, token: str) -> None:
    """Ask `AnonymousCookieMiddleware` to hand `token` to the client with this response."""
    setattr(state, _ISSUED, token)


class AnonymousCookieMiddleware:
    """Sets the cookie (and header) of an identity issued while serving the request.

    A middleware rather than `Response.set_cookie` in the dependency, so that streamed and
    file responses (which ignore the dependency's response headers) carry it too.
    """

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = scope.get("state", {}).get(_ISSUED)
                if isinstance(token, str):
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", cookie_header(token, secure=self.secure)))
                    headers.append((HEADER.lower().encode(), token.encode("ascii")))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def cookie_header(token: str, *, secure: bool) -> bytes:
    flags = f"; Max-Age={COOKIE_MAX_AGE_S}; Path=/; HttpOnly; SameSite=Strict"
    if secure:
        flags += "; Secure"
    return f"{COOKIE}={token}{flags}".encode("ascii")
