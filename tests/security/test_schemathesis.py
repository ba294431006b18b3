"""Property-based API test: every operation of the live OpenAPI schema, signed in.

A real uvicorn serves the app on 127.0.0.1; Schemathesis reads its /openapi.json, so routes added
later are covered without touching this file. Checks: no server error (a 503 the operation
documents, such as readiness before models load, is an answer, not an error) and every
documented response matches its schema.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import make_settings
from tests.security.conftest import PASSWORD, build_app, unique_email

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 40
MIN_TOTAL_CASES = 500
# Both end the signed-in session the rest of the run depends on; tests/security covers them.
SESSION_ENDING = [("DELETE", "/api/v1/users/me"), ("POST", "/api/v1/auth/logout")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[str]:
    app = build_app(make_settings(tmp_path_factory.mktemp("st"), database_url))
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def auth_headers(live_server: str) -> dict[str, str]:
    email = unique_email("fuzz")
    with httpx.Client(base_url=live_server) as client:
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def api_schema(live_server: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    for method, path in SESSION_ENDING:
        schema = schema.exclude(method=method, path=path)
    return schema


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """Any 5xx is a failure, except a 503 the operation documents (e.g. "not ready yet")."""
    status = int(response.status_code)
    if status < 500:
        return
    path = case.operation.schema.raw_schema["paths"][case.operation.path]
    documented = path[case.method.lower()].get("responses", {})
    if status == 503 and "503" in documented:
        return
    raise AssertionError(f"server error {status}: {response.text[:400]}")


def fuzz_operation(
    operation: Any, headers: dict[str, str], counts: dict[str, int], failures: list[str]
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # report every failure, do not shrink
    )
    def run(case: Any) -> None:
        counts[label] = counts.get(label, 0) + 1
        try:
            case.call_and_validate(
                headers=headers,
                checks=[no_server_error, response_schema_conformance],
                timeout=60,
            )
        except (Exception, BaseExceptionGroup) as exc:  # collect all, then fail once
            failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:600]}")

    run()


def test_api_conforms_to_its_schema(api_schema: Any, auth_headers: dict[str, str]) -> None:
    counts: dict[str, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        fuzz_operation(operation, auth_headers, counts, failures)
    assert not failures, "\n\n".join(failures[:20]) + f"\n({len(failures)} failures)"
    total = sum(counts.values())
    assert total >= MIN_TOTAL_CASES, counts
    print(f"schemathesis: {total} cases over {len(counts)} operations")  # noqa: T201
