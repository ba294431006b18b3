"""Rate limits (slowapi + limits): per user when authenticated, else per client address."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Literal

import anyio
from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from limits import RateLimitItem, parse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.responses import Response

from backend.accounts.caller import Caller
from backend.accounts.dependencies import get_caller
from backend.config import Settings
from backend.errors import TooManyRequestsError
from backend.web.client_ip import client_ip
from backend.web.problems import problem_response

logger = logging.getLogger(__name__)

LIMIT_NAMES = ("analyze", "chat", "login", "transcribe")


def _key_func(request: Request) -> str:
    """slowapi key: the authenticated user when known, else the client address."""
    key = getattr(request.state, "rate_limit_key", None)
    if isinstance(key, str):
        return key
    settings = _settings(request)
    return "ip:" + client_ip(request, settings.trusted_proxies)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.medsight.get(Settings)
    return settings


def build_limiter(settings: Settings) -> Limiter:
    """Redis storage when REDIS_URL is set (shared by every worker), memory otherwise."""
    return Limiter(
        key_func=_key_func,
        storage_uri=settings.redis_url or "memory://",
        strategy="moving-window",
        key_prefix="medsight",
        headers_enabled=False,
    )


def _limit_for(settings: Settings, name: str) -> RateLimitItem:
    return parse(str(getattr(settings, f"rate_limit_{name}")))


def caller_key(request: Request, caller: Caller) -> str:
    if caller.user_id is not None:
        return "user:" + caller.user_id
    settings = _settings(request)
    return "ip:" + client_ip(request, settings.trusted_proxies)


async def hit(request: Request, name: str, key: str) -> None:
    """Count one request against limit `name` for `key`; 429 with Retry-After when over."""
    settings = _settings(request)
    limiter = request.app.state.medsight.get(Limiter)
    item = _limit_for(settings, name)
    strategy = limiter.limiter
    remote = settings.redis_url is not None

    def consume() -> tuple[bool, float]:
        allowed = strategy.hit(item, name, key)
        reset_at = strategy.get_window_stats(item, name, key).reset_time if not allowed else 0.0
        return allowed, reset_at

    try:
        # A Redis round trip blocks: keep it off the event loop.
        allowed, reset_at = await anyio.to_thread.run_sync(consume) if remote else consume()
    except Exception:
        # A broken limiter store must not take the service down; it is logged loudly.
        logger.exception("rate limit storage failed; request allowed", extra={"limit": name})
        return
    if not allowed:
        retry = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequestsError(
            f"Rate limit of {item} for {name} exceeded; retry in {retry} s.",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
            extra={"limit": str(item), "retry_after_s": retry},
        )


def rate_limit(name: str, *, per: Literal["caller", "address"] = "caller") -> Any:
    """Dependency: `dependencies=[rate_limit("analyze")]` on a route (limit: RATE_LIMIT_<NAME>).

    `per="caller"` counts per user when authenticated, else per client address;
    `per="address"` always per client address (sign-in routes, before anyone is known).
    """
    if name not in LIMIT_NAMES:
        raise ValueError(f"unknown rate limit {name!r}; known: {', '.join(LIMIT_NAMES)}")

    if per == "address":

        async def by_address(request: Request) -> None:
            settings = _settings(request)
            await hit(request, name, "ip:" + client_ip(request, settings.trusted_proxies))

        by_address.__name__ = f"rate_limit_{name}"
        return Depends(by_address)

    async def by_caller(request: Request, caller: Caller = Depends(get_caller)) -> None:
        key = caller_key(request, caller)
        request.state.rate_limit_key = key
        await hit(request, name, key)

    by_caller.__name__ = f"rate_limit_{name}"
    result: DependsParam = Depends(by_caller)
    return result


async def rate_limit_exceeded_handler(request: Request, exc: Exception) -> Response:
    """Render slowapi's RateLimitExceeded (from `@limiter.limit` decorators) as problem+json."""
    assert isinstance(exc, RateLimitExceeded)  # noqa: S101 - registered for this type only
    retry = 60
    limit = getattr(exc, "limit", None)
    item = getattr(limit, "limit", None)
    if isinstance(item, RateLimitItem):
        retry = int(item.get_expiry())
    return problem_response(
        request,
        429,
        f"Rate limit exceeded: {exc.detail}.",
        code="rate_limited",
        title="Too Many Requests",
        headers={"Retry-After": str(retry)},
    )
