"""HTTP face of DICOMweb: STOW-RS (PS3.18 10.5), `POST /api/v1/dicomweb/studies`."""

from __future__ import annotations

import contextlib
import json

from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect

from backend.accounts.dependencies import OwnerDep
from backend.analysis.dependencies import RuntimeDep
from backend.dicomweb import service
from backend.dicomweb.dependencies import dicomweb_rate_limit
from backend.dicomweb.multipart import read_parts, related_boundary
from backend.dicomweb.schemas import DICOM_JSON, stow_responses
from backend.errors import BadRequestError
from backend.web.deps import ClientIP, SessionDep
from backend.web.problems import problem_responses

router = APIRouter(prefix="/api/v1/dicomweb", tags=["dicomweb"])

_BODY = {
    "required": True,
    "description": 'DICOM files as `multipart/related; type="application/dicom"; '
    "boundary=...`, one instance per part (PS3.18 10.5). Single-frame chest radiographs (CR, "
    "DX) are analysed; anything else is refused per instance with a Failure Reason.",
    "content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}},
}


@router.post(
    "/studies",
    summary="STOW-RS: store chest X-rays; each instance becomes an analysis",
    description="Each accepted instance is queued as an analysis (its `session_id` and `task_id` "
    "are in a private block of its Referenced SOP Sequence item). When `PACS_DICOMWEB_URL` is "
    "set, the finished result goes back into the same study as a DICOM SR and a heatmap series; "
    "`GET /api/v1/analyze/status/{task_id}` shows the delivery.",
    response_class=Response,
    responses={**stow_responses(), **problem_responses(400, 413, 415, 429)},
    openapi_extra={"requestBody": _BODY},
    dependencies=[Depends(dicomweb_rate_limit)],
)
async def store_studies(
    request: Request, runtime: RuntimeDep, session: SessionDep, owner: OwnerDep, ip: ClientIP
) -> Response:
    boundary = related_boundary(request.headers.get("content-type"))
    parts = read_parts(request.stream(), boundary, part_limit=runtime.settings.max_upload_bytes)
    try:
        async with contextlib.aclosing(parts):
            outcome = await service.store_instances(
                session, parts, runtime=runtime, owner=owner, client_ip=ip
            )
    except ClientDisconnect:
        raise BadRequestError("The request body ended early.", code="client_disconnected") from None
    if not len(outcome):
        raise BadRequestError("The request holds no DICOM instance.", code="stow_empty")
    return Response(
        content=json.dumps(outcome.to_json()),
        status_code=outcome.status_code,
        media_type=DICOM_JSON,
    )
