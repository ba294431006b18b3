"""Google sign-in against a local OpenID Connect provider: Authlib's real code runs end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from backend.config import Settings
from tests.fakes.oidc import FakeOIDCProvider
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import (
    build_app,
    client_for,
    fresh_peer,
    register_and_login,
    verification_link,
)


@pytest.fixture
async def gapp(google_settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(google_settings)
    async with application.router.lifespan_context(application):
        yield application


async def authorize(client: httpx.AsyncClient, start: httpx.Response) -> httpx.Response:
    """Follow Google's leg of the dance with a real HTTP client, then hit our callback."""
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    callback = urlsplit(consent.headers["location"])
    return await client.get(f"{callback.path}?{callback.query}")


async def test_google_sign_in_gives_a_one_time_code_not_tokens(
    gapp: FastAPI, oidc: FakeOIDCProvider
) -> None:
    async with client_for(gapp, fresh_peer()) as client:
        start = await client.get("/api/v1/auth/google", params={"return_to": "http://app.test/cb"})
        location = urlsplit(start.headers["location"])
        q = parse_qs(location.query)
        assert location.netloc == urlsplit(oidc.issuer).netloc
        assert q["code_challenge_method"] == ["S256"] and q["code_challenge"][0]
        assert q["state"][0] and q["nonce"][0] and "openid" in q["scope"][0]
        done = await authorize(client, start)
        assert done.status_code == 302, done.text
        target = urlsplit(done.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == "http://app.test/cb"
        assert "token" not in target.query and "token" not in target.fragment
        code = parse_qs(target.query)["code"][0]
        # PKCE really happened: the provider got the verifier matching the challenge.
        assert oidc.token_requests[-1]["code_verifier"]

        r = await client.post("/api/v1/auth/google/exchange", json={"code": code})
        assert r.status_code == 200, r.text
        tokens = r.json()
        me = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.json()["email"] == "ada@example.org" and me.json()["google_linked"] is True
        # The code is single-use.
        again = await client.post("/api/v1/auth/google/exchange", json={"code": code})
        assert_problem(again, 401)


async def test_google_links_an_existing_verified_email(
    gapp: FastAPI, oidc: FakeOIDCProvider
) -> None:
    oidc.user = {**oidc.user, "sub": "google-sub-link", "email": "linked@example.org"}
    async with client_for(gapp, fresh_peer()) as client:
        user = await register_and_login(client, "linked@example.org")
        r = await client.get(verification_link(gapp, "linked@example.org"))
        assert r.status_code == 200 and r.json()["status"] == "verified", r.text
        done = await authorize(client, await client.get("/api/v1/auth/google"))
        assert done.status_code == 200, done.text  # no return_to: the code comes as JSON
        r = await client.post("/api/v1/auth/google/exchange", json={"code": done.json()["code"]})
        me = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
        # Both proved the address: one account, the password kept beside Google.
        assert me.json()["id"] == user["id"] and me.json()["has_password"] is True
        assert me.json()["google_linked"] is True and me.json()["email_verified"] is True


@pytest.mark.parametrize(
    "mode", ["wrong_nonce", "wrong_aud", "wrong_iss", "bad_signature", "expired", "alg_none"]
)
async def test_bad_id_tokens_are_refused(gapp: FastAPI, oidc: FakeOIDCProvider, mode: str) -> None:
    oidc.mode = mode
    oidc.user = {**oidc.user, "sub": f"sub-{mode}", "email": f"{mode}@example.org"}
    async with client_for(gapp, fresh_peer()) as client:
        done = await authorize(client, await client.get("/api/v1/auth/google"))
        assert assert_problem(done, 401)["code"] == "invalid_id_token"


async def test_state_is_checked_and_single_use(gapp: FastAPI, oidc: FakeOIDCProvider) -> None:
    async with client_for(gapp, fresh_peer()) as client:
        start = await client.get("/api/v1/auth/google")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.headers["location"])
        callback = urlsplit(consent.headers["location"])
        q = parse_qs(callback.query)
        forged = await client.get(f"{callback.path}?code={q['code'][0]}&state=forged-state")
        assert assert_problem(forged, 400)["code"] == "invalid_state"
        # Another browser (without the state cookie) cannot finish this sign-in.
        async with client_for(gapp, fresh_peer()) as other:
            r = await other.get(f"{callback.path}?{callback.query}")
            assert assert_problem(r, 400)["code"] == "invalid_state"
        # ... and the state is spent by that attempt, so replaying it fails too.
        r = await client.get(f"{callback.path}?{callback.query}")
        assert_problem(r, 400)


async def test_return_to_must_be_an_allowed_origin(gapp: FastAPI) -> None:
    async with client_for(gapp, fresh_peer()) as client:
        for target in (
            "https://evil.example/cb",
            "javascript:alert(1)",
            "http://app.test@evil.example/",
        ):
            r = await client.get("/api/v1/auth/google", params={"return_to": target})
            assert_problem(r, 422)


async def test_google_not_configured_is_404(client: httpx.AsyncClient) -> None:
    # Not a server fault: this server simply offers no Google sign-in (a client may hide it).
    assert (
        assert_problem(await client.get("/api/v1/auth/google"), 404)["code"]
        == "oauth_not_configured"
    )
