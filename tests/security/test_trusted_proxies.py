"""Behind a reverse proxy (issue 16, item 7), over `medsight serve` on real loopback peers.

127.0.0.2 plays the proxy (named in TRUSTED_PROXIES) and appends the real client to
X-Forwarded-For; 127.0.0.4 is a client connecting directly and forging the header. Without
TRUSTED_PROXIES every client behind the proxy would be one address: one person's failed
sign-ins would rate-limit and lock everybody.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PG_URL, REPO
from tests.e2e.server import free_port, make_env

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("proxied")
    port = free_port()
    extra = {"DATABASE_URL": PG_URL} if PG_URL else {}
    env = make_env(
        data_dir,
        PRELOAD_MODELS="false",
        TRUSTED_PROXIES="127.0.0.2",
        RATE_LIMIT_LOGIN="5/minute",
        **extra,
    )
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (data_dir / "server.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()


def _via(url: str, source: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=source), timeout=30
    )


def _login(client: httpx.Client, email: str, password: str, xff: str | None) -> int:
    headers = {"X-Forwarded-For": xff} if xff else {}
    r = client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    return r.status_code


def test_clients_behind_the_trusted_proxy_are_limited_one_by_one(proxied: str) -> None:
    with _via(proxied, "127.0.0.2") as proxy:
        r = proxy.post(
            "/api/v1/auth/register",
            json={"email": "nurse@example.org", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.9"},
        )
        assert r.status_code == 202, r.text
        # One client behind the proxy exhausts its login allowance (5/minute) ...
        codes = [_login(proxy, "nobody@example.org", "x" * 12, "198.51.100.7") for _ in range(6)]
        assert codes == [401] * 5 + [429], codes
        # ... another client behind the same proxy still signs in.
        assert _login(proxy, "nurse@example.org", PASSWORD, "198.51.100.8") == 200
        # The client cannot escape its own limit by prepending a fake hop: the proxy appends
        # the real address, and the right-most untrusted hop is the one that counts.
        assert _login(proxy, "nobody@example.org", "x" * 12, "203.0.113.1, 198.51.100.7") == 429


def test_a_direct_client_cannot_forge_x_forwarded_for(proxied: str) -> None:
    with _via(proxied, "127.0.0.4") as direct:
        # Not a trusted proxy: its header is ignored, so it is limited as 127.0.0.4 whatever
        # address it claims ...
        codes = [
            _login(direct, "nobody@example.org", "x" * 12, f"198.51.100.{50 + i}") for i in range(6)
        ]
        assert codes == [401] * 5 + [429], codes
    with _via(proxied, "127.0.0.2") as proxy:
        # ... and the address it pretended to be is untouched.
        assert _login(proxy, "nurse@example.org", PASSWORD, "198.51.100.55") == 200
