"""Drive the chat engine and collect what a client would see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from backend.ml.rag import ChatContext, ChatEngine, ChatEvent


@dataclass
class Answer:
    events: list[ChatEvent]
    seconds: float

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "token")

    @property
    def done(self) -> dict[str, Any]:
        last = self.events[-1]
        assert last.event == "done", last
        return last.data

    @property
    def sources(self) -> list[dict[str, Any]]:
        first = self.events[0]
        assert first.event == "sources", first
        return list(first.data["sources"])


async def ask(engine: ChatEngine, message: str, analysis: dict[str, Any] | None = None) -> Answer:
    start = time.perf_counter()
    events = [e async for e in engine.stream(message, ChatContext(analysis=analysis))]
    return Answer(events, time.perf_counter() - start)
