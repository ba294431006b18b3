"""A small async STOW-RS client for the PACS (httpx; never blocks the event loop).

Errors say whether a retry can help (`PacsError.transient`) and carry no patient data: only
status codes, failure reasons and exception types, which are safe to store and show.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from backend.config import Settings
from backend.dicomweb.multipart import encode_related

# Answers that a later attempt cannot change: the request itself was refused.
_PERMANENT_STATUS = {400, 409, 413, 415, 422}


def _transient_reason(reason: int) -> bool:
    """Failure reasons (PS3.18 Table I.2-2) worth retrying: out of resources (A7xx), processing
    failure (0110)."""
    return (reason & 0xFF00) == 0xA700 or reason == 0x0110


class PacsError(Exception):
    """A delivery attempt failed; `transient` when retrying later may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class StowClient:
    """STOW-RS to `{PACS_DICOMWEB_URL}/studies`, with the configured credentials."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None):
        assert settings.pacs_dicomweb_url is not None  # noqa: S101 - built only when configured
        auth: httpx.Auth | None = None
        headers = {"Accept": "application/dicom+json"}
        if settings.pacs_dicomweb_token:
            headers["Authorization"] = f"Bearer {settings.pacs_dicomweb_token}"
        elif settings.pacs_dicomweb_username:
            auth = httpx.BasicAuth(
                settings.pacs_dicomweb_username, settings.pacs_dicomweb_password or ""
            )
        self.url = settings.pacs_dicomweb_url + "/studies"
        self._http = httpx.AsyncClient(
            auth=auth,
            headers=headers,
            timeout=httpx.Timeout(settings.pacs_timeout_s),
            verify=str(settings.pacs_ca_bundle) if settings.pacs_ca_bundle else True,
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def store(self, instances: Sequence[bytes], sop_instance_uids: Sequence[str]) -> None:
        """Store the DICOM files; returns when the PACS confirmed every one of them."""
        body, content_type = encode_related(instances)
        try:
            response = await self._http.post(
                self.url, content=body, headers={"Content-Type": content_type}
            )
        except httpx.TimeoutException as exc:
            raise PacsError(
                f"the PACS did not answer in time ({type(exc).__name__})", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            raise PacsError(
                f"the PACS is unreachable ({type(exc).__name__})", transient=True
            ) from exc
        _check(response, sop_instance_uids)


def _check(response: httpx.Response, expected: Sequence[str]) -> None:
    status = response.status_code
    body = _json(response)
    failed = _sequence(body, "00081198")
    if status == 200 and not failed:
        referenced = _sequence(body, "00081199")
        stored = {_uid(item, "00081155") for item in referenced}
        missing = [uid for uid in expected if uid not in stored]
        # A PACS that answers 200 without a list has stored everything; one that lists what it
        # stored must list ours.
        if referenced and missing:
            raise PacsError(
                f"the PACS answered 200 but did not list {len(missing)} of the instances",
                transient=True,
            )
        return
    if failed:
        reasons = [_failure_reason(item) for item in failed]
        shown = ", ".join(f"0x{r:04X}" if r is not None else "?" for r in reasons)
        transient = any(r is not None and _transient_reason(r) for r in reasons)
        raise PacsError(
            f"the PACS refused {len(failed)} instance(s) (HTTP {status}; failure reason {shown})",
            transient=transient,
        )
    raise PacsError(f"the PACS answered HTTP {status}", transient=status not in _PERMANENT_STATUS)


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = json.loads(response.content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _sequence(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    element = body.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _uid(item: dict[str, Any], tag: str) -> str:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


def _failure_reason(item: dict[str, Any]) -> int | None:
    element = item.get("00081197")
    values = element.get("Value") if isinstance(element, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], int):
        return values[0]
    return None
