"""Brute force: ten wrong passwords lock the guesser (account + address), never the owner
elsewhere; forged X-Forwarded-For changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.accounts import lockout
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import PASSWORD, client_for, register_and_login, unique_email

NO_RATE_LIMIT = {"rate_limit_login": "10000/minute"}


async def test_ten_wrong_passwords_lock_the_guesser_despite_forged_xff(app_with) -> None:
    async with app_with(**NO_RATE_LIMIT) as app, client_for(app, "203.0.113.7") as client:
        user = await register_and_login(client)
        bystander = await register_and_login(client)
        for i in range(10):
            r = await client.post(
                "/api/v1/auth/login",
                json={"email": user["email"], "password": f"wrong-password-{i}"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},  # a new "address" every try
            )
            assert_problem(r, 401)
        # The right password no longer works, from any claimed address.
        for forged in ("10.0.0.1", "198.51.100.99, 10.9.9.9"):
            r = await client.post(
                "/api/v1/auth/login",
                json={"email": user["email"], "password": PASSWORD},
                headers={"X-Forwarded-For": forged},
            )
            body = assert_problem(r, 429)
            assert body["code"] == "login_locked"
            assert 0 < int(r.headers["retry-after"]) <= 15 * 60
        # The owner, from a genuinely different client, is not locked out.
        async with client_for(app, "192.0.2.55") as elsewhere:
            r = await elsewhere.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
        # Another account on the same address is unaffected (below the address threshold).
        r = await client.post(
            "/api/v1/auth/login", json={"email": bystander["email"], "password": PASSWORD}
        )
        assert r.status_code == 200, r.text


async def test_nine_failures_then_success_resets_the_count(app_with) -> None:
    async with app_with(**NO_RATE_LIMIT) as app, client_for(app) as client:
        user = await register_and_login(client)
        for _ in range(2):
            for i in range(9):
                r = await client.post(
                    "/api/v1/auth/login", json={"email": user["email"], "password": f"nope{i:08d}"}
                )
                assert r.status_code == 401
            r = await client.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
            )
            assert r.status_code == 200, r.text


async def test_password_spraying_locks_the_address_not_the_forged_one(
    app_with, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockout, "ADDRESS_POLICY", replace(lockout.ADDRESS_POLICY, threshold=12))
    async with app_with(**NO_RATE_LIMIT) as app:
        async with client_for(app, "192.0.2.10") as victim_side:
            victim = await register_and_login(victim_side)
        async with client_for(app, "203.0.113.66") as attacker:
            for i in range(12):
                r = await attacker.post(
                    "/api/v1/auth/login",
                    json={"email": unique_email("spray"), "password": "Winter2026!!"},
                    headers={"X-Forwarded-For": f"100.64.0.{i}"},
                )
                assert_problem(r, 401)
            # Even a correct password is refused from this address now, whatever XFF says.
            r = await attacker.post(
                "/api/v1/auth/login",
                json={"email": victim["email"], "password": PASSWORD},
                headers={"X-Forwarded-For": "192.0.2.10"},
            )
            assert assert_problem(r, 429)["code"] == "login_locked"
        async with client_for(app, "192.0.2.10") as victim_side:
            r = await victim_side.post(
                "/api/v1/auth/login", json={"email": victim["email"], "password": PASSWORD}
            )
            assert r.status_code == 200, r.text


async def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(
    app_with, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lockout, "ADDRESS_POLICY", replace(lockout.ADDRESS_POLICY, threshold=5))
    async with app_with(trusted_proxies=["10.0.0.0/8"], **NO_RATE_LIMIT) as app:
        async with client_for(app, "10.0.0.2") as proxy:
            user = await register_and_login(proxy)
            for i in range(5):
                # The attacker prepends a fake hop; the proxy appends the real address.
                r = await proxy.post(
                    "/api/v1/auth/login",
                    json={"email": unique_email(), "password": "Winter2026!!"},
                    headers={"X-Forwarded-For": f"1.2.3.{i}, 198.51.100.23"},
                )
                assert_problem(r, 401)
            r = await proxy.post(
                "/api/v1/auth/login",
                json={"email": user["email"], "password": PASSWORD},
                headers={"X-Forwarded-For": "9.9.9.9, 198.51.100.23"},
            )
            assert_problem(r, 429)
            # A different real client behind the same proxy is not locked out.
            r = await proxy.post(
                "/api/v1/auth/login",
                json={"email": user["email"], "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.24"},
            )
            assert r.status_code == 200, r.text


async def test_guessing_from_many_addresses_is_slowed_not_locked(
    app_with, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distributed guesser (a new address per try) makes every attempt on the account wait."""
    import time

    soft = replace(lockout.ACCOUNT_SOFT, after=4, step_s=0.2, max_delay_s=0.6)
    monkeypatch.setattr(lockout, "ACCOUNT_SOFT", soft)
    async with app_with(**NO_RATE_LIMIT) as app:
        async with client_for(app, "192.0.2.80") as owner_side:
            user = await register_and_login(owner_side)
        for i in range(8):
            async with client_for(app, f"198.18.0.{i + 1}") as bot:
                r = await bot.post(
                    "/api/v1/auth/login", json={"email": user["email"], "password": f"guess{i:07d}"}
                )
                assert_problem(r, 401)
        async with client_for(app, "192.0.2.80") as owner_side:
            started = time.monotonic()
            r = await owner_side.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
            )
            waited = time.monotonic() - started
        assert r.status_code == 200, r.text  # never refused ...
        assert waited >= soft.max_delay_s  # ... but slowed: 8 failures > 4 → the 0.6 s cap
