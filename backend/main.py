"""`backend.main:app` for uvicorn: the app from `backend.api.app`, built on first access."""

from __future__ import annotations

from typing import Any

from backend.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Built on first access rather than at import: nothing stateful happens at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
