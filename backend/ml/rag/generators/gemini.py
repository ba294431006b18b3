"""Tier 1: Gemini through google-genai's async client, streaming, with timeouts and a breaker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from backend.ml.rag.generators.base import GeneratorError
from backend.ml.rag.generators.breaker import CircuitBreaker
from backend.ml.rag.prompts import PromptInput, build_llm_prompt

logger = logging.getLogger(__name__)


class GeminiGenerator:
    """Streams from `models/{model}:streamGenerateContent?alt=sse` (base URL overridable).

    Fails fast rather than waiting: no SDK retries, `first_token_timeout_s` for the first chunk,
    `stall_timeout_s` between chunks and `timeout_s` for the whole answer. Everything it sends is
    scrubbed of personal identifiers first.
    """

    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 8.0,
        first_token_timeout_s: float = 2.0,
        stall_timeout_s: float = 2.0,
        api_version: str | None = None,
        max_output_tokens: int = 400,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.first_token_timeout_s = min(first_token_timeout_s, timeout_s)
        self.stall_timeout_s = min(stall_timeout_s, timeout_s)
        self.api_version = api_version
        self.max_output_tokens = max_output_tokens
        self.breaker = breaker or CircuitBreaker()
        self._client: Any = None

    def available(self) -> bool:
        return bool(self.api_key) and self.breaker.allow()

    def _get_client(self) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            options = types.HttpOptions(
                base_url=self.base_url,
                api_version=self.api_version,
                timeout=int(self.timeout_s * 1000),  # milliseconds
            )
            self._client = genai.Client(api_key=self.api_key, http_options=options)
        return self._client

    def _request(self, inp: PromptInput) -> tuple[list[Any], Any]:
        from google.genai import types

        prompt = build_llm_prompt(inp, scrub=True)
        contents = [
            types.Content(
                role="model" if role == "assistant" else "user", parts=[types.Part(text=text)]
            )
            for role, text in prompt.turns
        ]
        config = types.GenerateContentConfig(
            system_instruction=prompt.system,
            temperature=0.2,
            max_output_tokens=self.max_output_tokens,
        )
        return contents, config

    async def stream(self, inp: PromptInput, usage: dict[str, Any]) -> AsyncGenerator[str, None]:
        if not self.api_key:
            raise GeneratorError("no Gemini API key configured")
        contents, config = self._request(inp)
        deadline = time.monotonic() + self.timeout_s
        # The SDK stream is consumed by its own task: cancelling that task unwinds the SDK's
        # nested generators at once, which releases (closes) the HTTP connection when the client
        # goes away or a timeout fires. Closing only the outer generator would leave the
        # connection open until garbage collection.
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(contents, config, queue))
        got_any = False
        try:
            while True:
                wait = self.stall_timeout_s if got_any else self.first_token_timeout_s
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError("Gemini answer exceeded its total time budget")
                async with asyncio.timeout(wait):
                    kind, value = await queue.get()
                if kind == "error":
                    raise value
                if kind == "end":
                    break
                meta = getattr(value, "usage_metadata", None)
                if meta is not None:
                    usage["prompt_tokens"] = getattr(meta, "prompt_token_count", None)
                    usage["completion_tokens"] = getattr(meta, "candidates_token_count", None)
                text = _chunk_text(value)
                if text:
                    got_any = True
                    yield text
            if not got_any:
                raise GeneratorError("Gemini returned no text")
        except GeneratorError:
            self.breaker.record_failure()
            raise
        except Exception as exc:  # noqa: BLE001 - any SDK/network failure or timeout
            self.breaker.record_failure()
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            logger.warning("gemini tier failed (%s): %s", reason, str(exc)[:200])
            raise GeneratorError(f"Gemini {reason}") from exc
        else:
            self.breaker.record_success()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _pump(
        self, contents: list[Any], config: Any, queue: asyncio.Queue[tuple[str, Any]]
    ) -> None:
        try:
            client = self._get_client()
            stream = await client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in stream:
                queue.put_nowait(("chunk", chunk))
            queue.put_nowait(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            queue.put_nowait(("error", exc))


def _chunk_text(chunk: Any) -> str:
    # chunk.text warns on non-text parts; read the parts directly.
    parts: list[str] = []
    for candidate in getattr(chunk, "candidates", None) or []:
        content = getattr(candidate, "content", None)
        for part in getattr(content, "parts", None) or []:
            text = getattr(part, "text", None)
            if text and not getattr(part, "thought", False):
                parts.append(text)
        break  # one candidate only
    return "".join(parts)
