"""Why an upload was refused, as a domain error with an HTTP status."""

from __future__ import annotations

from backend.errors import AppError


class ImageRejected(AppError):
    status_code = 422
    code = "invalid_image"
    title = "Invalid image"
