"""Helpers for chat over a real server: a small corpus slice and an SSE reader."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import shared_data


def corpus_slice(dest: Path, abstracts: int = 60, medquad: int = 150) -> Path:
    """A small copy of the PubMed/MedQuAD corpus so a server builds its index in seconds."""
    src = shared_data("pubmed")
    dest.mkdir(parents=True, exist_ok=True)
    for name, n in (("abstracts.jsonl", abstracts), ("medquad_lung.jsonl", medquad)):
        lines = (src / name).read_text(encoding="utf-8").splitlines()[:n]
        (dest / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def wait_corpus(url: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        body = httpx.get(url + "/api/v1/health/ready", timeout=10).json()
        state = body.get("checks", {}).get("corpus", {}).get("state")
        if state == "ready":
            return
        if state in {"failed", "missing"}:
            raise AssertionError(f"corpus {state}: {body}")
        time.sleep(0.5)
    raise TimeoutError(f"corpus not ready (last state {state})")


def read_sse(response: httpx.Response) -> list[tuple[str, dict[str, Any], float]]:
    """(event, data, seconds since the request started) for each event of a stream."""
    started = time.perf_counter()
    events: list[tuple[str, dict[str, Any], float]] = []
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            events.append((name, json.loads(data), time.perf_counter() - started))
            name, data = "message", ""
    return events
