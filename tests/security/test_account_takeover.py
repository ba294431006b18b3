"""Account takeover attacks on sign-in, each performed against the real app (issue 16, items 2-3).

Google is the local fake OpenID provider (faked at the wire); everything else is the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from backend.config import Settings
from tests.conftest import REPO, make_settings
from tests.fakes.oidc import CLIENT_ID, CLIENT_SECRET, FakeOIDCProvider
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import (
    PASSWORD,
    build_app,
    client_for,
    fresh_peer,
    register_and_login,
    verification_link,
)
from tests.security.test_google import authorize

SPACE = "https://medsight-demo.hf.space"


@pytest.fixture
def space_settings(tmp_path: Path, database_url: str, oidc: FakeOIDCProvider) -> Settings:
    """A Space deployment as the old .env.example suggested: one exact origin plus a regex."""
    return make_settings(
        tmp_path,
        database_url,
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_discovery_url=oidc.discovery_url,
        allowed_origins=[SPACE],
        allowed_origin_regex=r"https://.*\.hf\.space",
    )


@pytest.fixture
async def space_app(space_settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(space_settings)
    async with application.router.lifespan_context(application):
        yield application


def _code(done: httpx.Response) -> str:
    assert done.status_code == 302, done.text
    return parse_qs(urlsplit(done.headers["location"]).query)["code"][0]


# --- item 3: one-time-code theft ------------------------------------------------------------
async def test_an_attackers_space_cannot_receive_the_code(space_app: FastAPI) -> None:
    """The attacker sends the victim a sign-in link whose return_to is the attacker's Space."""
    async with client_for(space_app, fresh_peer()) as victim:
        r = await victim.get(
            "/api/v1/auth/google", params={"return_to": "https://attacker.hf.space/steal"}
        )
        assert assert_problem(r, 422)["code"] == "invalid_return_to"
        # The exact configured origin still works.
        start = await victim.get("/api/v1/auth/google", params={"return_to": f"{SPACE}/"})
        assert start.status_code == 302, start.text


async def test_a_leaked_code_is_useless_outside_the_initiating_browser(
    space_app: FastAPI, oidc: FakeOIDCProvider
) -> None:
    """Even a code that leaks (a log, a proxy, a redirect) cannot be exchanged elsewhere."""
    oidc.user = {**oidc.user, "sub": "victim-sub-1", "email": "victim1@example.org"}
    async with client_for(space_app, fresh_peer()) as victim:
        start = await victim.get("/api/v1/auth/google", params={"return_to": f"{SPACE}/"})
        assert "httponly" in start.headers.get("set-cookie", "").lower()
        code = _code(await authorize(victim, start))
        async with client_for(space_app, fresh_peer()) as attacker:
            stolen = await attacker.post("/api/v1/auth/google/exchange", json={"code": code})
            assert assert_problem(stolen, 401)["code"] == "invalid_code"
            # Another browser's own binding cookie does not fit this code either.
            await attacker.get("/api/v1/auth/google", params={"return_to": f"{SPACE}/"})
            stolen = await attacker.post("/api/v1/auth/google/exchange", json={"code": code})
            assert assert_problem(stolen, 401)["code"] == "invalid_code"
        # The victim's browser, which started the sign-in, still can.
        r = await victim.post("/api/v1/auth/google/exchange", json={"code": code})
        assert r.status_code == 200, r.text


def test_the_example_configuration_has_no_wildcard_origin() -> None:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("ALLOWED_ORIGIN"):
            assert "*" not in line and ".*" not in line, line
    assert r"https://.*\.hf\.space" not in text


# --- item 2: Google pre-account takeover ----------------------------------------------------
async def test_a_pre_registered_password_does_not_survive_google_sign_in(
    gapp_takeover: FastAPI, oidc: FakeOIDCProvider
) -> None:
    """The attacker registers the victim's address first, then the victim uses Google."""
    victim_email = "prey@example.org"
    oidc.user = {**oidc.user, "sub": "victim-sub-2", "email": victim_email}
    async with client_for(gapp_takeover, fresh_peer()) as attacker:
        planted = await register_and_login(attacker, victim_email)
        key = await attacker.post(
            "/api/v1/users/me/api-keys",
            headers=planted["headers"],
            json={"name": "backdoor", "scopes": ["analyze:read"]},
        )
        assert key.status_code == 201, key.text
        api_key = key.json()["key"]

    async with client_for(gapp_takeover, fresh_peer()) as victim:
        done = await authorize(victim, await victim.get("/api/v1/auth/google"))
        r = await victim.post("/api/v1/auth/google/exchange", json={"code": done.json()["code"]})
        assert r.status_code == 200, r.text
        me = (
            await victim.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
            )
        ).json()
        assert me["google_linked"] is True and me["email_verified"] is True
        assert me["has_password"] is False  # the attacker's password is gone

    async with client_for(gapp_takeover, fresh_peer()) as attacker:
        login = await attacker.post(
            "/api/v1/auth/login", json={"email": victim_email, "password": PASSWORD}
        )
        assert assert_problem(login, 401)["code"] == "invalid_credentials"
        refreshed = await attacker.post(
            "/api/v1/auth/refresh", json={"refresh_token": planted["refresh_token"]}
        )
        assert_problem(refreshed, 401)
        assert_problem(await attacker.get("/api/v1/auth/me", headers=planted["headers"]), 401)
        assert_problem(await attacker.get("/api/v1/auth/me", headers={"X-API-Key": api_key}), 401)


async def test_verification_link_proves_the_address_and_nothing_else(
    gapp_takeover: FastAPI,
) -> None:
    async with client_for(gapp_takeover, fresh_peer()) as client:
        user = await register_and_login(client)
        assert (await client.get("/api/v1/auth/me", headers=user["headers"])).json()[
            "email_verified"
        ] is False
        link = verification_link(gapp_takeover, user["email"])
        # A forged or altered token is refused.
        path, query = link.split("?", 1)
        token = parse_qs(query)["token"][0]
        forged = await client.get(path, params={"token": token[:-2] + "AA"})
        assert assert_problem(forged, 400)["code"] == "invalid_link"
        r = await client.get(link)
        assert r.status_code == 200 and r.json()["email"] == user["email"].lower(), r.text
        me = (await client.get("/api/v1/auth/me", headers=user["headers"])).json()
        assert me["email_verified"] is True


@pytest.fixture
async def gapp_takeover(google_settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(google_settings)
    async with application.router.lifespan_context(application):
        yield application
