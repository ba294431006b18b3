"""Accounts and security: tokens, passwords, API keys, lockout, rate limits, audit, Google."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.config import Settings


def install_auth(app: FastAPI, settings: Settings) -> None:
    """Include the auth and users routers, install the rate limiter, document 401/403.

    Call from `create_app` once; routers included before or after are all documented.
    """
    # Imported here: backend.api.deps imports backend.auth.caller, so no import at module top.
    from slowapi.errors import RateLimitExceeded

    from backend.api.routers import auth as auth_router
    from backend.api.routers import users as users_router
    from backend.auth.ratelimit import build_limiter, rate_limit_exceeded_handler

    app.state.limiter = build_limiter(settings)
    app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)
    app.include_router(auth_router.router)
    app.include_router(users_router.router)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _declare_auth_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_AUTH_PROBLEMS = {"401": "Unauthorized", "403": "Forbidden"}


def _declare_auth_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """Operations that accept credentials (they carry `security`) can answer 401 and 403."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            for code, phrase in _AUTH_PROBLEMS.items():
                responses.setdefault(
                    code,
                    {
                        "description": phrase,
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/ProblemDetail"}
                            }
                        },
                    },
                )
    return spec
