"""The DICOMweb domain's route dependencies."""

from __future__ import annotations

from fastapi import Request

from backend.accounts.dependencies import CallerDep
from backend.accounts.ratelimit import caller_key, hit


async def dicomweb_rate_limit(request: Request, caller: CallerDep) -> None:
    """One STOW-RS request against RATE_LIMIT_DICOMWEB, per user (or client address)."""
    key = caller_key(request, caller)
    request.state.rate_limit_key = key
    await hit(request, "dicomweb", key)
