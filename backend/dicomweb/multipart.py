"""Streaming `multipart/related` reading (STOW-RS requests) and writing (STOW-RS to a PACS).

Parts are handed out as soon as each is complete, so a request of many instances holds at most
one instance in memory at a time; a part over its size limit keeps only its head (enough to
name the instance in the response) and is reported as too large.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from backend.errors import AppError, BadRequestError

# How much of an oversized part is kept to identify its instance (its DICOM header).
HEAD_BYTES = 256 * 1024
DICOM = "application/dicom"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"


@dataclass
class Part:
    """One body part: its bytes (or only their head when `too_large`) and content type."""

    content_type: str | None
    data: bytes
    size: int
    too_large: bool = False


@dataclass
class _Building:
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    too_large: bool = False
    field_name: bytes = b""
    field_value: bytes = b""


def related_boundary(content_type: str | None) -> str:
    """The boundary of a `multipart/related; type="application/dicom"` request, or a 4xx."""
    if not content_type:
        raise UnsupportedMediaType(
            'Send the instances as multipart/related; type="application/dicom".'
        )
    media, params = parse_options_header(content_type)
    if media.lower() != b"multipart/related":
        raise UnsupportedMediaType(
            f"{media.decode('latin-1')[:100] or 'This media type'} is not accepted here: send "
            'the instances as multipart/related; type="application/dicom".'
        )
    root_type = params.get(b"type", b"").lower()
    if root_type and root_type != DICOM.encode():
        raise UnsupportedMediaType(
            f"Only DICOM files (type={DICOM}) are accepted; "
            f"{root_type.decode('latin-1')[:100]} (metadata and bulk data) is not supported.",
            code="unsupported_stow_type",
        )
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise BadRequestError(
            "The multipart/related Content-Type has no (or an over-long) boundary parameter.",
            code="multipart_boundary_missing",
        )
    return boundary.decode("latin-1")


class RelatedReader:
    """Feed body chunks with `feed`; completed parts come out of `drain`."""

    def __init__(self, boundary: str, *, part_limit: int) -> None:
        self.part_limit = part_limit
        self._current: _Building | None = None
        self._done: list[Part] = []
        self.parts_seen = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
            max_header_count=16,
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise BadRequestError(
                f"The multipart body is malformed after {self.parts_seen} complete part(s).",
                code="multipart_malformed",
            ) from exc

    def finish(self) -> None:
        """End of body: a part still open means the closing boundary never came."""
        if self._current is not None:
            raise BadRequestError(
                "The multipart body ended inside a part (no closing boundary).",
                code="multipart_truncated",
            )

    def drain(self) -> list[Part]:
        done, self._done = self._done, []
        return done

    # --- parser callbacks -----------------------------------------------------------------
    def _begin(self) -> None:
        self._current = _Building()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.field_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.field_value += data[start:end]

    def _header_end(self) -> None:
        part = self._current
        if part is not None:
            name = part.field_name.decode("latin-1").strip().lower()
            part.headers[name] = part.field_value.decode("latin-1").strip()
            part.field_name = part.field_value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        if part is None:
            return
        n = end - start
        part.size += n
        if part.size > self.part_limit:
            part.too_large = True
            kept = sum(len(c) for c in part.chunks)
            if kept < HEAD_BYTES:
                part.chunks.append(bytes(data[start : start + min(n, HEAD_BYTES - kept)]))
            return
        part.chunks.append(bytes(data[start:end]))

    def _end(self) -> None:
        part = self._current
        self._current = None
        if part is None:
            return
        self.parts_seen += 1
        content_type = part.headers.get("content-type")
        self._done.append(
            Part(
                content_type=content_type.split(";")[0].strip().lower() if content_type else None,
                data=b"".join(part.chunks),
                size=part.size,
                too_large=part.too_large,
            )
        )


async def read_parts(
    stream: AsyncIterator[bytes], boundary: str, *, part_limit: int
) -> AsyncGenerator[Part, None]:
    """Each part of a multipart/related body, as soon as it is complete."""
    reader = RelatedReader(boundary, part_limit=part_limit)
    async for chunk in stream:
        reader.feed(chunk)
        for part in reader.drain():
            yield part
    reader.finish()
    for part in reader.drain():
        yield part


def encode_related(instances: Iterable[bytes]) -> tuple[bytes, str]:
    """A multipart/related body of DICOM files and its Content-Type header value."""
    boundary = "medsight-" + secrets.token_hex(16)
    body = bytearray()
    for data in instances:
        body += f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode("ascii")
        body += data
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode("ascii")
    return bytes(body), f'multipart/related; type="{DICOM}"; boundary={boundary}'
