"""Answer generators, one per tier: Gemini (cloud), a local LLM, and templates."""

from backend.ml.rag.generators.base import Generator, GeneratorError
from backend.ml.rag.generators.breaker import CircuitBreaker
from backend.ml.rag.generators.gemini import GeminiGenerator
from backend.ml.rag.generators.local import LocalLLM, LocalLLMGenerator, load_local_llm
from backend.ml.rag.generators.template import TemplateGenerator

__all__ = [
    "CircuitBreaker",
    "GeminiGenerator",
    "Generator",
    "GeneratorError",
    "LocalLLM",
    "LocalLLMGenerator",
    "TemplateGenerator",
    "load_local_llm",
]
