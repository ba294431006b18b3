"""Register, sign in, refresh rotation, sign out, whoami — as a client sees them."""

from __future__ import annotations

import httpx

from tests.integration.test_foundation import assert_problem
from tests.security.conftest import PASSWORD, register_and_login, unique_email


async def test_register_login_me_refresh_logout(client: httpx.AsyncClient) -> None:
    email = unique_email("Flow")
    r = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Grace Hopper"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "accepted" and PASSWORD not in str(body)
    assert "password_hash" not in body and "id" not in body

    r = await client.post("/api/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["access_token"] and tokens["refresh_token"]
    assert r.headers["cache-control"] == "no-store"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = (await client.get("/api/v1/auth/me", headers=auth)).json()
    assert me["email"] == email.lower() and me["full_name"] == "Grace Hopper"

    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    auth2 = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=auth2)).status_code == 200

    assert (await client.post("/api/v1/auth/logout", headers=auth2)).status_code == 204
    # Signing out kills the session's access tokens and its refresh token.
    assert_problem(await client.get("/api/v1/auth/me", headers=auth2), 401)
    assert_problem(await client.get("/api/v1/auth/me", headers=auth), 401)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert_problem(r, 401)


async def test_oauth2_password_form_for_swagger(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    r = await client.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "bearer"


async def test_password_policy(client: httpx.AsyncClient) -> None:
    for password, code in (
        ("short1!", "password_too_short"),
        ("password123", "password_too_common"),
        ("aaaaaaaaaaaa", "password_too_common"),
    ):
        r = await client.post(
            "/api/v1/auth/register", json={"email": unique_email(), "password": password}
        )
        assert assert_problem(r, 422)["code"] == code


async def test_duplicate_email_and_bad_email(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    r = await client.post(
        "/api/v1/auth/register", json={"email": user["email"], "password": PASSWORD}
    )
    # The same answer as for a new address: registration does not reveal who has an account.
    new = await client.post(
        "/api/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    assert r.status_code == new.status_code == 202 and r.json() == new.json()
    r = await client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD}
    )
    assert_problem(r, 422)


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient) -> None:
    user = await register_and_login(client)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "x" * 12}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": unique_email(), "password": "x" * 12}
    )
    assert assert_problem(wrong, 401)["detail"] == assert_problem(unknown, 401)["detail"]


async def test_me_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/me")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


async def test_nul_and_control_characters_are_422_not_500(client: httpx.AsyncClient) -> None:
    # PostgreSQL cannot store NUL: such input must be refused before it reaches the database.
    user = await register_and_login(client)
    nul = "a\x00b@example.org"
    for path, body in (
        ("/api/v1/auth/login", {"email": nul, "password": PASSWORD}),
        ("/api/v1/auth/register", {"email": unique_email(), "password": PASSWORD + "\x00"}),
        (
            "/api/v1/auth/register",
            {"email": unique_email(), "password": PASSWORD, "full_name": "\x00"},
        ),
        ("/api/v1/auth/refresh", {"refresh_token": "x\x00y"}),
        ("/api/v1/auth/google/exchange", {"code": "\x00"}),
    ):
        assert_problem(await client.post(path, json=body), 422)
    r = await client.post(
        "/api/v1/users/me/api-keys",
        headers=user["headers"],
        json={"name": "\x00", "scopes": ["chat"]},
    )
    assert_problem(r, 422)
    r = await client.delete("/api/v1/users/me/api-keys/%00", headers=user["headers"])
    assert_problem(r, 422)
    assert_problem(await client.get("/api/v1/auth/google/callback?state=%00&code=x"), 422)
    assert_problem(await client.get("/api/v1/auth/google?return_to=http://a%00"), 422)
