"""Schemathesis from outside, as a client would run it: the CLI against a served instance.

Every operation of the served /openapi.json, all four phases (examples, coverage, fuzzing,
stateful), positive and negative data, signed in; checks: no server error, documented status
codes, documented content types, bodies that match their schemas. A real uvicorn serves the app
on 127.0.0.1, so routes added later are covered without touching this file.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.conftest import make_settings
from tests.security.conftest import PASSWORD, build_app, unique_email

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,"
CHECKS += "response_schema_conformance"
PHASES = "examples,coverage,fuzzing,stateful"
MAX_EXAMPLES = 12
# Both end the signed-in session the rest of the run depends on: they get their own pass.
SESSION_ENDING = "^/api/v1/(users/me|auth/logout)$"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[str]:
    settings = make_settings(
        tmp_path_factory.mktemp("st"),
        database_url,
        rate_limit_analyze="100000/hour",
        rate_limit_chat="100000/hour",
        rate_limit_login="100000/minute",
        preload_models=True,
    )
    app = build_app(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    # Readiness is 503 while the models load, by design: fuzz the running service, not its start.
    while httpx.get(f"{base}/api/v1/health/ready", timeout=30).status_code != 200:
        if time.monotonic() > deadline + 240:
            raise RuntimeError("the service did not become ready")
        time.sleep(1)
    yield base
    server.should_exit = True
    thread.join(timeout=30)


def _token(base: str) -> str:
    email = unique_email("fuzz")
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
    return str(r.json()["access_token"])


def _schemathesis(base: str, token: str, report: Path, *filters: str, phases: str = PHASES) -> None:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{base}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        "20261203",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
        "--header",
        f"Authorization: Bearer {token}",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *filters,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)
    output = done.stdout + done.stderr
    print(output[-3000:])  # noqa: T201 - the run's summary in the test log
    assert done.returncode == 0, output[-12000:]


def test_api_conforms_to_its_schema_from_outside(live_server: str, tmp_path: Path) -> None:
    _schemathesis(
        live_server,
        _token(live_server),
        tmp_path / "main.xml",
        "--exclude-path-regex",
        SESSION_ENDING,
    )
    # Logout and account deletion, with an account of their own (no links between them: the
    # stateful phase has nothing to chain).
    _schemathesis(
        live_server,
        _token(live_server),
        tmp_path / "ending.xml",
        "--include-path-regex",
        SESSION_ENDING,
        phases="examples,coverage,fuzzing",
    )
