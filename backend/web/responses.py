"""Responses for bodies served many times: their headers are encoded once, not per request."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

RawHeaders = list[tuple[bytes, bytes]]


def encode_headers(body: bytes, media_type: str, headers: Mapping[str, str]) -> RawHeaders:
    """The raw ASGI header pairs of a 200 answer with this body."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode("latin-1")))
    raw.append((b"content-type", media_type.encode("latin-1")))
    return raw


class EncodedResponse(Response):
    """A 200 with a body and headers encoded beforehand (`encode_headers`)."""

    def __init__(self, body: bytes, raw_headers: RawHeaders) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        # A copy: middleware may add to the list it is given, and these pairs are shared.
        self.raw_headers = list(raw_headers)
