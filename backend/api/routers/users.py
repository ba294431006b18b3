"""HTTP face of the signed-in user's own data: history, API keys, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from backend.api.deps import CurrentUser, SessionDep, StateDep, TokenUser, require_scope
from backend.api.errors import problem_responses
from backend.api.schemas.auth import (
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyOut,
    RiskTrendOut,
    SessionItemOut,
    SessionsPageOut,
    TrendPointOut,
)
from backend.auth import api_keys, users
from backend.auth.dependencies import ClientIP
from backend.db.models import ApiKey

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


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
    responses=problem_responses(401, 403),
)
async def delete_me(user: TokenUser, state: StateDep, session: SessionDep, ip: ClientIP) -> None:
    await users.erase_user(session, state.storage, user, client_ip=ip)
    state.results.discard_owner(user.id)  # an owner's key is their user id


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreatedOut,
    summary="Create an API key (the key is shown only in this response)",
    responses=problem_responses(401, 403, 422),
)
async def create_api_key(
    body: ApiKeyCreateIn, user: TokenUser, session: SessionDep, ip: ClientIP
) -> ApiKeyCreatedOut:
    created = await api_keys.create_key(
        session, user, name=body.name, scopes=list(body.scopes), client_ip=ip
    )
    return ApiKeyCreatedOut(**_key_out(created.row).model_dump(), key=created.secret)


@router.get(
    "/me/api-keys",
    response_model=list[ApiKeyOut],
    summary="Your API keys (prefixes only, never the keys)",
    responses=problem_responses(401, 403),
)
async def list_api_keys(user: TokenUser, session: SessionDep) -> list[ApiKeyOut]:
    return [_key_out(row) for row in await api_keys.list_keys(session, user)]


@router.delete(
    "/me/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key",
    responses=problem_responses(401, 403, 404),
)
async def revoke_api_key(
    key_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")],
    user: TokenUser,
    session: SessionDep,
    ip: ClientIP,
) -> ApiKeyOut:
    return _key_out(await api_keys.revoke_key(session, user, key_id, client_ip=ip))
