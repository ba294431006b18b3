"""Domain errors. Services raise these; the API renders them as RFC 9457 problem details."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class AppError(Exception):
    """Base of every error a client may see; `message` must be safe to show."""

    status_code = 500
    code = "internal_error"
    title = "Internal Server Error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
            if type(self).title == AppError.title and status_code != 500:
                # A bare AppError given a 4xx must not be titled "Internal Server Error".
                try:
                    self.title = HTTPStatus(status_code).phrase
                except ValueError:
                    self.title = "Error"
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequestError(AppError):
    status_code = 400
    code = "bad_request"
    title = "Bad Request"


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"
    title = "Not Found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"
    title = "Payload Too Large"


class UnprocessableError(AppError):
    status_code = 422
    code = "unprocessable"
    title = "Unprocessable Content"


class TooManyRequestsError(AppError):
    status_code = 429
    code = "rate_limited"
    title = "Too Many Requests"


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "unavailable"
    title = "Service Unavailable"
