"""Reading multipart uploads with a size limit enforced while reading."""

from __future__ import annotations

from fastapi import UploadFile

from backend.errors import PayloadTooLargeError

_CHUNK = 1024 * 1024


async def read_limited(upload: UploadFile, limit: int, *, what: str, code: str) -> bytes:
    """The whole upload, or 413 as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The {what} exceeds the upload limit of {limit / 2**20:.0f} MB.", code=code
            )
        chunks.append(chunk)
    return b"".join(chunks)
