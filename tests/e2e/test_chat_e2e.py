"""Chat over a real server: after an analysis, the template tier streams a grounded answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.ml.rag.generators.local import resolve_local_llm_path
from tests.conftest import PG_URL, fixture_images
from tests.e2e.chat_support import corpus_slice, read_sse, wait_corpus
from tests.e2e.server import Server, running_server
from tests.e2e.test_analysis_e2e import submit, wait_result

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("chat")
    extra = {
        "CORPUS_AUTOBUILD": "true",
        "CORPUS_DATA_DIR": str(corpus_slice(data_dir / "corpus")),
        "GEMINI_API_KEY": "",
    }
    if PG_URL:
        extra["DATABASE_URL"] = PG_URL
    with running_server(data_dir, **extra) as srv:
        wait_corpus(srv.url)
        yield srv


def test_what_does_my_result_mean_streams_sources_tokens_done(chat_server: Server) -> None:
    with httpx.Client(base_url=chat_server.url, timeout=60) as client:
        result = wait_result(client, submit(client, fixture_images()[2]))
        with client.stream(
            "POST",
            "/api/v1/chat",
            json={"message": "What does my result mean?", "session_id": result["session_id"]},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_sse(response)
        names = [name for name, _, _ in events]
        assert "sources" in names and "done" in names
        tokens = [data["text"] for name, data, _ in events if name == "token"]
        assert len(tokens) >= 2
        answer = "".join(tokens)
        assert f"{result['vision']['anomaly_score']:.0f}" in answer or "score" in answer.lower()
        done = next(data for name, data, _ in events if name == "done")
        # No cloud key: the local model answers in the default install, templates otherwise.
        assert done["tier"] == ("local" if resolve_local_llm_path(None) else "template")
        assert names.index("sources") < names.index("token") < names.index("done")
        # The completed turn is saved and can be read back by its owner.
        turns = client.get(f"/api/v1/chat/{done['conversation_id']}/messages").json()
        assert [t["role"] for t in turns[-2:]] == ["user", "assistant"]
        assert turns[-1]["content"] == answer


def test_dose_questions_get_no_dose_instructions(chat_server: Server) -> None:
    with httpx.Client(base_url=chat_server.url, timeout=60) as client:
        with client.stream(
            "POST",
            "/api/v1/chat",
            json={"message": "How many mg of amoxicillin should I take twice a day for pneumonia?"},
        ) as response:
            events = read_sse(response)
    from backend.ml.rag.safety import contains_dose_instruction

    answer = "".join(d["text"] for n, d, _ in events if n == "token")
    assert answer and not contains_dose_instruction(answer)
    assert any(n == "done" for n, _, _ in events)


def test_invalid_chat_requests_are_422(chat_server: Server) -> None:
    with httpx.Client(base_url=chat_server.url, timeout=30) as client:
        for body in (
            {},
            {"message": ""},
            {"message": "x" * 2001},
            {"message": "hi", "session_id": "a\x00b"},
        ):
            response = client.post("/api/v1/chat", json=body)
            assert response.status_code == 422, body
            assert response.headers["content-type"].startswith("application/problem+json")
        missing = client.post("/api/v1/chat", json={"message": "hi", "session_id": "nope"})
        assert missing.status_code == 404
