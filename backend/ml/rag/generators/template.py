"""Tier 3 as a generator: the template answer, streamed a few words at a time."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

from backend.ml.rag.prompts import PromptInput
from backend.ml.rag.templates import template_answer

_PIECE = re.compile(r"\S+\s*")


class TemplateGenerator:
    """Always available; cannot fail on valid input."""

    name = "template"

    def __init__(self, words_per_token: int = 3) -> None:
        self.words_per_token = words_per_token

    def available(self) -> bool:
        return True

    async def stream(self, inp: PromptInput, usage: dict[str, Any]) -> AsyncGenerator[str, None]:
        text = template_answer(
            inp.intent, inp.message, inp.facts, inp.passages, inp.earlier, inp.session_id
        )
        words = _PIECE.findall(text)
        usage["completion_words"] = len(words)
        for i in range(0, len(words), self.words_per_token):
            yield "".join(words[i : i + self.words_per_token])
