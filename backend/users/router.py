"""HTTP face of the signed-in user's own data: history with its risk trend, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from backend.accounts.dependencies import CurrentUser, RecentUser, require_scope
from backend.analysis.dependencies import ResultCacheDep, RuntimeDep
from backend.users import service as users
from backend.users.schemas import RiskTrendOut, SessionItemOut, SessionsPageOut, TrendPointOut
from backend.web.deps import ClientIP, SessionDep
from backend.web.problems import problem_responses

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get(
    "/me/sessions",
    response_model=SessionsPageOut,
    summary="Your analyses, newest first, with the trend of the anomaly score",
    dependencies=[require_scope("analyze:read")],
    responses=problem_responses(401, 403, 422),
)
async def list_sessions(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SessionsPageOut:
    page = await users.history(session, user, limit=limit, offset=offset)
    return SessionsPageOut(
        items=[
            SessionItemOut(
                session_id=a.id,
                created_at=a.created_at,
                status=a.status,
                overall_status=a.overall_status,
                anomaly_score=a.anomaly_score,
                risk_level=a.risk_level,
                patient_ref=a.patient_ref,
            )
            for a in page.items
        ],
        total=page.total,
        limit=limit,
        offset=offset,
        trend=RiskTrendOut(
            direction=page.direction,
            points=[
                TrendPointOut(
                    session_id=p.session_id,
                    created_at=p.created_at,
                    anomaly_score=p.anomaly_score,
                    risk_level=p.risk_level,
                )
                for p in page.trend
            ],
        ),
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your account with every upload, result and chat",
    description="Needs a bearer token from a sign-in at most REAUTH_MAX_AGE_MINUTES (10) old "
    "(a refreshed token keeps its sign-in's age): sign in again first, otherwise 401 "
    "`reauthentication_required`.",
    responses=problem_responses(401, 403),
)
async def delete_me(
    user: RecentUser,
    runtime: RuntimeDep,
    results: ResultCacheDep,
    session: SessionDep,
    ip: ClientIP,
) -> None:
    await users.erase_user(session, runtime.storage, user, client_ip=ip)
    results.discard_owner(user.id)  # an owner's key is their user id
