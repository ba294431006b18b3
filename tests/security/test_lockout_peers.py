"""Owner lockout over a real socket: uvicorn on loopback, clients from distinct loopback
addresses (127.0.0.2 is the guesser, 127.0.0.3 the owner; both are real peer addresses)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PG_URL
from tests.e2e.server import Server, free_port, make_env

PASSWORD = "correct horse battery staple"


def _client(url: str, source: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=source), timeout=30
    )


def test_thirty_wrong_passwords_elsewhere_do_not_lock_the_owner_out(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("lockout-peers")
    extra = {"DATABASE_URL": PG_URL} if PG_URL else {}
    port = free_port()
    env = make_env(data_dir, PRELOAD_MODELS="false", **extra)
    server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir, env=env)
    server.start(wait_ready=False)  # sign-in needs no model
    try:
        _attack(server)
    finally:
        server.stop()


def _attack(server: Server) -> None:
    email = "owner@example.org"
    with _client(server.url, "127.0.0.3") as owner:
        r = owner.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 202, r.text
    seen: dict[int, int] = {}
    with _client(server.url, "127.0.0.2") as guesser:
        for i in range(30):
            r = guesser.post(
                "/api/v1/auth/login", json={"email": email, "password": f"guess-{i:06d}"}
            )
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
        # The guesser is stopped: locked after ten (and past the per-address rate limit).
        assert seen.get(401) == 10 and seen.get(429) == 20, seen
        r = guesser.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429, r.text
    with _client(server.url, "127.0.0.3") as owner:
        r = owner.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
