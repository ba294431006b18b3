"""RFC 9457 problem details for every error the service returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import AppError
from backend.ml.registry import ModelUnavailableError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Where: e.g. `body.email` or `query.wait`")
    message: str = Field(description="What is wrong, for a person")
    type: str = Field(description="Machine-readable kind, e.g. `missing`")


class ProblemDetail(BaseModel):
    """The body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem", examples=["about:blank"])
    title: str = Field(description="Short summary of the kind", examples=["Not Found"])
    status: int = Field(description="The HTTP status code", examples=[404])
    detail: str = Field(description="What went wrong this time, for a person")
    instance: str = Field(description="The request path", examples=["/api/v1/analyze/result/x"])
    code: str | None = Field(
        default=None, description="Stable machine-readable code", examples=["not_found"]
    )
    request_id: str | None = Field(
        default=None, description="Quote it when reporting (also in X-Request-ID)"
    )
    errors: list[FieldError] | None = Field(
        default=None, description="Per-field validation errors (422)"
    )


def problem_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem+json bodies for the given codes."""
    return {
        code: {
            "model": ProblemDetail,
            "description": HTTPStatus(code).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for code in status_codes
    }


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """Build a problem+json response; `detail` must already be safe to show a client."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"urn:medsight:problem:{code}" if code else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    if code:
        body["code"] = code
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    all_headers = dict(headers or {})
    if body["request_id"]:
        # The 500 handler runs outside the request-id middleware: set the header here too.
        all_headers.setdefault("X-Request-ID", str(body["request_id"]))
    return JSONResponse(
        jsonable_encoder(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=all_headers,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 - registered for AppError only
    return problem_response(
        request,
        exc.status_code,
        exc.message,
        code=exc.code,
        title=exc.title,
        headers=exc.headers or None,
        extra=exc.extra,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    status = exc.status_code
    if status == 404:
        detail = f"No resource at {request.url.path}."
    elif status == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}."
    elif isinstance(exc.detail, str):
        detail = exc.detail
    else:
        detail = HTTPStatus(status).phrase
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(
        request, status, detail, code=_status_code_name(status), headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = []
    for err in exc.errors():
        kind = str(err.get("type", "value_error"))
        message = str(err.get("msg", "invalid value"))
        field = _field_name(err.get("loc", ()))
        if kind == "json_invalid":
            # The location is a character offset, not a field: say so in words.
            offset = field
            field = "body"
            message = f"the body is not valid JSON (error at character {offset})"
        errors.append({"field": field, "message": message, "type": kind})
    fields = ", ".join(sorted({e["field"] for e in errors})) or "body"
    return problem_response(
        request,
        422,
        f"The request is invalid; check these fields: {fields}.",
        code="validation_error",
        errors=errors,
    )


async def _model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("model unavailable: %s", exc)
    return problem_response(
        request,
        503,
        "A model this request needs is not available right now. Retry shortly.",
        code="model_unavailable",
        headers={"Retry-After": "30"},
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Full detail goes to the log (with the request id); the client gets none of it.
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        request,
        500,
        "An unexpected error occurred. Quote the request id when reporting it.",
        code="internal_error",
    )


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, including framework ones, through problem+json."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ModelUnavailableError, _model_unavailable)
    app.add_exception_handler(Exception, _unhandled)
