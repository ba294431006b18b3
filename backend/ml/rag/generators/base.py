"""The interface every tier implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol

from backend.ml.rag.prompts import PromptInput


class GeneratorError(RuntimeError):
    """A tier could not produce (the rest of) an answer; the engine falls back to the next."""


class Generator(Protocol):
    """Streams raw answer text; safety filtering and the disclaimer are the engine's job."""

    name: str

    def available(self) -> bool:
        """Cheap check (no loading, no network) that this tier may be tried now."""
        ...

    def stream(self, inp: PromptInput, usage: dict[str, Any]) -> AsyncGenerator[str, None]:
        """Yield answer text pieces, filling `usage`; raise GeneratorError on failure."""
        ...
