"""Token attacks: every forged, expired, misdirected or replayed token is a 401."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from backend.config import Settings
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import register_and_login


def claims(settings: Settings, user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": user_id,
        "typ": "access",
        "fam": uuid.uuid4().hex,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def status_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_well_formed_token_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The control: the forgeries below differ from this in one respect each.
    user = await register_and_login(client)
    token = jwt.encode(claims(settings, user["id"]), settings.jwt_secret_key, algorithm="HS256")
    assert (await status_with(client, token)).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "rs_hs_confusion",
        "rs256_foreign_key",
        "hs512",
        "expired",
        "wrong_aud",
        "wrong_iss",
        "tampered_payload",
        "wrong_secret",
        "refresh_as_access",
        "missing_jti",
        "missing_exp",
        "unknown_user",
        "garbage",
    ],
)
async def test_forged_tokens_are_401(
    client: httpx.AsyncClient, settings: Settings, case: str
) -> None:
    user = await register_and_login(client)
    secret = settings.jwt_secret_key
    good = claims(settings, user["id"])
    token: str
    if case == "alg_none":
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        token = f"{header}.{b64(json.dumps(good).encode())}."
    elif case in {"rs_hs_confusion", "rs256_foreign_key"}:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if case == "rs256_foreign_key":
            token = jwt.encode(good, key, algorithm="RS256")
        else:
            # Classic confusion: HMAC-sign with a public key the server might treat as a secret.
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
            body = b64(json.dumps(good).encode())
            import hashlib
            import hmac

            sig = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
            token = f"{header}.{body}.{b64(sig)}"
    elif case == "hs512":
        token = jwt.encode(good, secret, algorithm="HS512")
    elif case == "expired":
        now = int(time.time())
        token = jwt.encode(
            claims(settings, user["id"], iat=now - 3600, nbf=now - 3600, exp=now - 60),
            secret,
            algorithm="HS256",
        )
    elif case == "wrong_aud":
        token = jwt.encode(claims(settings, user["id"], aud="other-api"), secret, algorithm="HS256")
    elif case == "wrong_iss":
        token = jwt.encode(claims(settings, user["id"], iss="evil"), secret, algorithm="HS256")
    elif case == "tampered_payload":
        real = user["access_token"].split(".")
        payload = json.loads(base64.urlsafe_b64decode(real[1] + "=="))
        payload["sub"] = str(uuid.uuid4())
        token = f"{real[0]}.{b64(json.dumps(payload).encode())}.{real[2]}"
    elif case == "wrong_secret":
        token = jwt.encode(good, "x" * 64, algorithm="HS256")
    elif case == "refresh_as_access":
        token = user["refresh_token"]
    elif case == "missing_jti":
        token = jwt.encode(claims(settings, user["id"], jti=None), secret, algorithm="HS256")
    elif case == "missing_exp":
        token = jwt.encode(claims(settings, user["id"], exp=None), secret, algorithm="HS256")
    elif case == "unknown_user":
        token = jwt.encode(claims(settings, str(uuid.uuid4())), secret, algorithm="HS256")
    else:
        token = "not.a.jwt"
    response = await status_with(client, token)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_access_token_cannot_refresh(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["access_token"]})
    assert_problem(r, 401)


async def test_reused_refresh_token_revokes_its_family(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    other = await register_and_login(client)  # another user's session must survive
    stolen = user["refresh_token"]
    r1 = await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert r1.status_code == 200
    fresh = r1.json()
    # The thief (or the victim) replays the spent token: the whole family is revoked.
    replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert assert_problem(replay, 401)["code"] == "refresh_token_reused"
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert_problem(r, 401)
    assert_problem(await status_with(client, fresh["access_token"]), 401)
    assert_problem(await status_with(client, user["access_token"]), 401)
    assert (await status_with(client, other["access_token"])).status_code == 200
    # Signing in again starts a new, working family.
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": "correct horse battery staple"},
    )
    assert (await status_with(client, r.json()["access_token"])).status_code == 200


async def test_expired_refresh_token_is_401(
    client: httpx.AsyncClient, settings: Settings, app: FastAPI
) -> None:
    user = await register_and_login(client)
    now = int(time.time())
    token = jwt.encode(
        claims(settings, user["id"], typ="refresh", iat=now - 99, nbf=now - 99, exp=now - 30),
        settings.jwt_secret_key,
        algorithm="HS256",
    )
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": token}), 401)
