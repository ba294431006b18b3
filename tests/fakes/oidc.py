"""A local OpenID Connect provider on 127.0.0.1 (a real HTTP server), standing in for Google.

It serves discovery, authorize (auto-consents as `provider.user`), token (checks client secret,
redirect_uri and PKCE S256) and JWKS, and signs id_tokens with RS256. `provider.mode` makes it
misbehave the way a hostile or broken provider would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "medsight-test-client"
CLIENT_SECRET = "test-client-secret-" + "x" * 20


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    method: str | None
    user: dict[str, Any]


@dataclass
class FakeOIDCProvider:
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "google-sub-1",
            "email": "ada@example.org",
            "email_verified": True,
            "name": "Ada Lovelace",
        }
    )
    # ok | wrong_nonce | wrong_aud | wrong_iss | bad_signature | expired | alg_none
    mode: str = "ok"
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._grants: dict[str, _Grant] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def start(self) -> FakeOIDCProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                provider._get(self)

            def do_POST(self) -> None:
                provider._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- endpoints -----------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers=None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        h.send_response(status)
        if body is not None:
            h.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        if url.path == "/.well-known/openid-configuration":
            self._send(
                h,
                200,
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": self.issuer + "/authorize",
                    "token_endpoint": self.issuer + "/token",
                    "jwks_uri": self.issuer + "/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                    ],
                },
            )
        elif url.path == "/jwks":
            jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
            jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
            self._send(h, 200, {"keys": [jwk]})
        elif url.path == "/authorize":
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            self.authorize_requests.append(q)
            if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
                self._send(h, 400, {"error": "invalid_request"})
                return
            code = secrets.token_urlsafe(16)
            self._grants[code] = _Grant(
                client_id=q["client_id"],
                redirect_uri=q.get("redirect_uri", ""),
                nonce=q.get("nonce"),
                challenge=q.get("code_challenge"),
                method=q.get("code_challenge_method"),
                user=dict(self.user),
            )
            target = (
                q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
            )
            self._send(h, 302, None, {"Location": target})
        else:
            self._send(h, 404, {"error": "not_found"})

    def _client_credentials(
        self, h: BaseHTTPRequestHandler, form: dict[str, str]
    ) -> tuple[str, str]:
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            raw = base64.b64decode(auth[6:]).decode()
            cid, _, secret = raw.partition(":")
            from urllib.parse import unquote

            return unquote(cid), unquote(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        if urlsplit(h.path).path != "/token":
            self._send(h, 404, {"error": "not_found"})
            return
        length = int(h.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()}
        self.token_requests.append(form)
        cid, secret = self._client_credentials(h, form)
        if cid != CLIENT_ID or secret != CLIENT_SECRET:
            self._send(h, 401, {"error": "invalid_client"})
            return
        grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            self._send(h, 400, {"error": "invalid_grant"})
            return
        if form.get("redirect_uri") != grant.redirect_uri:
            self._send(h, 400, {"error": "invalid_grant", "error_description": "redirect_uri"})
            return
        verifier = form.get("code_verifier", "")
        expected = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if grant.method != "S256" or not verifier or expected != grant.challenge:
            self._send(h, 400, {"error": "invalid_grant", "error_description": "PKCE failed"})
            return
        access = secrets.token_urlsafe(24)
        self._send(
            h,
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "openid email profile",
                "id_token": self._id_token(grant, access),
            },
        )

    def _id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        at_hash = (
            base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()[:16])
            .rstrip(b"=")
            .decode()
        )
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 600,
            "nonce": grant.nonce,
            "at_hash": at_hash,
            **grant.user,
        }
        key = self._key
        if self.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.mode == "wrong_aud":
            claims["aud"] = "someone-else"
        elif self.mode == "wrong_iss":
            claims["iss"] = "https://evil.example"
        elif self.mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.mode == "bad_signature":
            key = self._other_key
        if self.mode == "alg_none":
            return jwt.encode(claims, None, algorithm="none")
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
