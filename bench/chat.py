"""Chat first-token latency (template tier) against a real server on a small corpus slice.

.venv/bin/python -m bench.chat [--n 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import fixture_images
from tests.e2e.chat_support import corpus_slice, wait_corpus
from tests.e2e.server import running_server

QUESTIONS = [
    "What does my result mean?",
    "Why is this area highlighted on the heatmap?",
    "What should I do next?",
    "What are the symptoms of pneumonia?",
    "How serious is my risk?",
    "What are the limitations of this analysis?",
]


def first_token_ms(client: httpx.Client, message: str, session_id: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    with client.stream(
        "POST", "/api/v1/chat", json={"message": message, "session_id": session_id}
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("event: token"):
                first = (time.perf_counter() - started) * 1000
    total = (time.perf_counter() - started) * 1000
    return (first if first is not None else total), total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        env = {"CORPUS_AUTOBUILD": "true", "CORPUS_DATA_DIR": str(corpus_slice(data / "corpus"))}
        with running_server(data, **env) as server:
            wait_corpus(server.url)
            with httpx.Client(base_url=server.url, timeout=60) as client:
                image = fixture_images()[0]
                accepted = client.post(
                    "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}
                ).json()
                while client.get(f"/api/v1/analyze/status/{accepted['task_id']}").json()[
                    "status"
                ] in {"queued", "running"}:
                    time.sleep(0.05)
                sid = accepted["session_id"]
                for q in QUESTIONS:  # warm-up
                    first_token_ms(client, q, sid)
                firsts, totals = [], []
                for i in range(args.n):
                    f, t = first_token_ms(client, QUESTIONS[i % len(QUESTIONS)], sid)
                    firsts.append(f)
                    totals.append(t)
    firsts.sort()
    totals.sort()
    print(f"# chat benchmark (template tier)  {time.strftime('%Y-%m-%d %H:%M')}  n={args.n}")

    def p95(values: list[float]) -> float:
        return values[int(0.95 * (len(values) - 1))]

    print(f"first token  p50 {statistics.median(firsts):.1f} ms  p95 {p95(firsts):.1f} ms")
    print(f"full answer  p50 {statistics.median(totals):.1f} ms  p95 {p95(totals):.1f} ms")


if __name__ == "__main__":
    main()
