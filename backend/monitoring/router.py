"""`GET /api/v1/monitoring/drift`: is the recent case mix still like the reference population?"""

from __future__ import annotations

from fastapi import APIRouter

from backend.monitoring.dependencies import MonitorDep, OperatorDep
from backend.monitoring.schemas import DriftReport
from backend.web.deps import SessionDep
from backend.web.problems import problem_responses

router = APIRouter(prefix="/api/v1/monitoring", tags=["operations"])


@router.get(
    "/drift",
    summary="Drift of recent analyses from the vision model's reference population",
    response_model=DriftReport,
    dependencies=[OperatorDep],
    responses=problem_responses(401, 403),
)
async def get_drift(monitor: MonitorDep, session: SessionDep) -> DriftReport:
    """The last DRIFT_WINDOW scored chest X-rays against the reference (docs/monitoring.md).

    Development: anyone; production: an administrator, or `Authorization: Bearer
    <METRICS_TOKEN>`.
    """
    return await monitor.check(session)
