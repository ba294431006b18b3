"""Clinical PDF and FHIR R4 export of a finished analysis."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from backend.accounts.caller import Owner
from backend.accounts.dependencies import OwnerDep
from backend.analysis import service as analysis_service
from backend.audit.dependencies import AuditSpoolDep
from backend.audit.service import audit_read, audit_refused_read
from backend.db.models import Analysis
from backend.reports.service import ReportService
from backend.web.deps import ClientIP, SessionDep
from backend.web.docs import ETAG_HEADER, etag_responses
from backend.web.etags import not_modified
from backend.web.problems import problem_responses
from backend.web.state import provide

router = APIRouter(prefix="/api/v1/report", tags=["reports"])

ReportsDep = Annotated[ReportService, provide(ReportService)]


def _read_event(owner: Owner, analysis_id: str, ip: str, fmt: str) -> dict[str, object]:
    return {
        "actor_id": owner.user_id,
        "action": "report.read",
        "resource_type": "analysis",
        "resource_id": analysis_id,
        "client_ip": ip,
        "details": {"format": fmt},
    }


async def _owned_analysis(
    session: SessionDep, owner: OwnerDep, session_id: str, ip: ClientIP, audit: AuditSpoolDep
) -> Analysis:
    """The caller's analysis; a refused lookup (404) is audited as a report read."""
    async with audit_refused_read(
        audit,
        session,
        action="report.read",
        actor_id=owner.user_id,
        resource_id=session_id,
        client_ip=ip,
    ):
        return await analysis_service.get_analysis(session, owner, session_id)


@router.get(
    "/{session_id}",
    summary="Clinical PDF report of an analysis",
    response_class=Response,
    responses={
        **etag_responses("application/pdf", "The PDF report", binary=True),
        **problem_responses(404, 409),
    },
)
async def get_pdf(
    session_id: str,
    request: Request,
    reports: ReportsDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    audit: AuditSpoolDep,
) -> Response:
    analysis = await _owned_analysis(session, owner, session_id, ip, audit)
    result = analysis_service.finished_result(analysis)
    etag = reports.etag(result, "pdf")
    headers = {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    if not_modified(request.headers.get("if-none-match"), etag):
        await audit_read(audit, session, **_read_event(owner, analysis.id, ip, "pdf"))
        return Response(status_code=304, headers=headers)
    pdf = await reports.pdf(
        result, etag, image_key=analysis.image_key, image_format=analysis.image_format
    )
    headers["Content-Disposition"] = f'inline; filename="medsight-{session_id}.pdf"'
    await audit_read(audit, session, **_read_event(owner, analysis.id, ip, "pdf"))
    return Response(content=pdf, media_type="application/pdf", headers=headers)


@router.get(
    "/{session_id}/fhir",
    summary="FHIR R4 Bundle (DiagnosticReport, Observations, heatmap, Provenance)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
            "description": "FHIR R4 Bundle",
            "headers": ETAG_HEADER,
        },
        **problem_responses(404, 409),
    },
)
async def get_fhir(
    session_id: str,
    reports: ReportsDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    audit: AuditSpoolDep,
) -> Response:
    analysis = await _owned_analysis(session, owner, session_id, ip, audit)
    result = analysis_service.finished_result(analysis)
    body = await reports.fhir(result)
    await audit_read(audit, session, **_read_event(owner, analysis.id, ip, "fhir"))
    return Response(
        content=body,
        media_type="application/fhir+json",
        headers={"ETag": reports.etag(result, "fhir")},
    )
