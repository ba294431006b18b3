"""Clinical PDF and FHIR R4 export of a finished analysis."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

import anyio
from fastapi import APIRouter, Header, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from backend.analysis import service as analysis_service
from backend.analysis.service import Owner
from backend.api.deps import OwnerDep, SessionDep, StateDep
from backend.api.errors import problem_responses
from backend.api.etags import not_modified
from backend.auth.audit import audit_read
from backend.auth.dependencies import ClientIP
from backend.state import AppState

router = APIRouter(prefix="/api/v1/report", tags=["reports"])

_CACHE_SIZE = 64


def _etag(result: dict[str, Any], kind: str, code_version: str) -> str:
    digest = hashlib.sha256(
        json.dumps(result, sort_keys=True, default=str).encode()
        + kind.encode()
        + code_version.encode()
    ).hexdigest()[:32]
    return f'"{kind}-{digest}"'


def _cache(state: AppState) -> OrderedDict[str, bytes]:
    cache: OrderedDict[str, bytes] = state.extras.setdefault("report_cache", OrderedDict())
    return cache


async def _audit_read(
    state: AppState, session: AsyncSession, owner: Owner, analysis_id: str, ip: str, fmt: str
) -> None:
    await audit_read(
        state.audit,
        session,
        actor_id=owner.user_id,
        action="report.read",
        resource_type="analysis",
        resource_id=analysis_id,
        client_ip=ip,
        details={"format": fmt},
    )


@router.get(
    "/{session_id}",
    summary="Clinical PDF report of an analysis",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The PDF report"},
        304: {"description": "Not modified (ETag matched)"},
        **problem_responses(404, 409),
    },
)
async def pdf_report(
    session_id: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    if_none_match: str | None = Header(default=None),
) -> Response:
    analysis = await analysis_service.get_analysis(session, owner, session_id)
    result = analysis_service.finished_result(analysis)
    etag = _etag(result, "pdf", state.pipeline.code_version)
    headers = {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    if not_modified(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    cache = _cache(state)
    pdf = cache.get(etag)
    if pdf is None:
        from backend.reports.pdf import render_pdf

        original_png: bytes | None = None
        if not (result.get("vision") or {}).get("heatmap_base64"):
            # The panels already show the original; fetch it only when they are missing.
            original = await anyio.to_thread.run_sync(state.storage.get, analysis.image_key)
            original_png = await anyio.to_thread.run_sync(_as_png, original, analysis.image_format)
        pdf = await anyio.to_thread.run_sync(lambda: render_pdf(result, original_png=original_png))
        cache[etag] = pdf
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(etag)
    headers["Content-Disposition"] = f'inline; filename="medsight-{session_id}.pdf"'
    # Audit last: on SQLite the append holds the write lock until the request commits.
    await _audit_read(state, session, owner, analysis.id, ip, "pdf")
    return Response(content=pdf, media_type="application/pdf", headers=headers)


@router.get(
    "/{session_id}/fhir",
    summary="FHIR R4 Bundle (DiagnosticReport, Observations, heatmap, Provenance)",
    response_class=Response,
    responses={
        200: {"content": {"application/fhir+json": {}}, "description": "FHIR R4 Bundle"},
        **problem_responses(404, 409),
    },
)
async def fhir_report(
    session_id: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
) -> Response:
    analysis = await analysis_service.get_analysis(session, owner, session_id)
    result = analysis_service.finished_result(analysis)
    from backend.reports.fhir import build_fhir_bundle

    bundle = await anyio.to_thread.run_sync(lambda: build_fhir_bundle(result))
    etag = _etag(result, "fhir", state.pipeline.code_version)
    await _audit_read(state, session, owner, analysis.id, ip, "fhir")
    return Response(
        content=json.dumps(bundle),
        media_type="application/fhir+json",
        headers={"ETag": etag},
    )


def _as_png(data: bytes, fmt: str) -> bytes | None:
    """The original as PNG for the report (DICOM and JPEG are decoded and re-encoded)."""
    if fmt == "png":
        return data
    import io

    from PIL import Image

    from backend.imaging import decode_image

    try:
        pixels = decode_image(data).pixels
    except Exception:  # noqa: BLE001 - the report then shows the heatmap panels only
        return None
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
