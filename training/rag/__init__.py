"""RAG evaluation and corpus tooling used by the `medsight` CLI."""

from training.rag.retrieval_eval import evaluate_retrieval

__all__ = ["evaluate_retrieval"]
