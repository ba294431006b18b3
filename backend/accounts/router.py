"""HTTP face of accounts: register, sign in, refresh, sign out, Google sign-in, whoami."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Form, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from backend.accounts import anonymous, api_keys, google, service
from backend.accounts.caller import auth_required
from backend.accounts.dependencies import CallerDep, TokenUser
from backend.accounts.google import GoogleClients
from backend.accounts.mailer import Mailer
from backend.accounts.ratelimit import rate_limit
from backend.accounts.schemas import (
    AnonymousIdentityOut,
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyOut,
    CodeExchangeIn,
    LoginIn,
    OneTimeCodeOut,
    RefreshIn,
    RegisterAccepted,
    RegisterIn,
    TokenPairOut,
    UserOut,
    VerifiedOut,
)
from backend.accounts.service import OAUTH_CODE_TTL, TokenPair
from backend.db.models import ApiKey, User
from backend.errors import ForbiddenError
from backend.web.deps import ClientIP, SessionDep, SettingsDep
from backend.web.problems import problem_responses
from backend.web.state import provide

GoogleClientsDep = Annotated[GoogleClients, provide(GoogleClients)]
MailerDep = Annotated[Mailer, provide(Mailer)]

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_LOGIN_LIMIT = [rate_limit("login", per="address")]
# Query values that reach the database: printable ASCII only (PostgreSQL text cannot hold NUL).
_PRINTABLE = r"^[\x21-\x7e]+$"


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        created_at=user.created_at,
        has_password=user.password_hash is not None,
        google_linked=user.google_sub is not None,
        email_verified=user.email_verified_at is not None,
    )


def _pair_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RegisterAccepted,
    summary="Create an account with email and password (a confirmation link is mailed)",
    description="Answers 202 with the same body whether the address is new or already has an "
    "account, so it cannot be used to find out who has one. A new account can sign in at once; "
    "its address counts as proved only after the mailed link is opened (in development the "
    "link is written to the log).",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(422, 429),
)
async def register(
    request: Request,
    body: RegisterIn,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    ip: ClientIP,
) -> RegisterAccepted:
    await service.register(
        session,
        settings,
        mailer,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        client_ip=ip,
        base_url=str(request.base_url),
    )
    return RegisterAccepted()


@router.get(
    "/verify",
    response_model=VerifiedOut,
    summary="Open the emailed confirmation link: marks the address as proved",
    responses=problem_responses(400, 422),
)
async def verify_email(
    session: SessionDep,
    settings: SettingsDep,
    ip: ClientIP,
    token: Annotated[str, Query(min_length=1, max_length=1024, pattern=_PRINTABLE)],
) -> VerifiedOut:
    user = await service.verify_email(session, settings, token=token, client_ip=ip)
    return VerifiedOut(email=user.email)


@router.post(
    "/verify/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RegisterAccepted,
    summary="Mail a new confirmation link to the signed-in account's address",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(401, 403, 429),
)
async def resend_verification(
    request: Request, user: TokenUser, session: SessionDep, settings: SettingsDep, mailer: MailerDep
) -> RegisterAccepted:
    if user.email_verified_at is None and user.password_hash is not None:
        await service.send_verification(
            session, settings, mailer, user, base_url=str(request.base_url)
        )
    return RegisterAccepted(detail="If the address still needs confirming, a link was sent.")


async def _login(
    session: SessionDep, settings: SettingsDep, response: Response, ip: str, email: str, pw: str
) -> TokenPairOut:
    pair = await service.login(session, settings, email=email, password=pw, client_ip=ip)
    await session.commit()  # the refresh token must exist before the client can use it
    _no_store(response)
    return _pair_out(pair)


@router.post(
    "/login",
    response_model=TokenPairOut,
    summary="Sign in with email and password",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(401, 422, 429),
)
async def login(
    body: LoginIn, session: SessionDep, settings: SettingsDep, response: Response, ip: ClientIP
) -> TokenPairOut:
    return await _login(session, settings, response, ip, body.email, body.password)


@router.post(
    "/token",
    response_model=TokenPairOut,
    summary="OAuth2 password flow (for Swagger's Authorize button): username is the email",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(401, 422, 429),
)
async def token(
    username: Annotated[str, Form(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f]+$")],
    password: Annotated[str, Form(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")],
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    ip: ClientIP,
) -> TokenPairOut:
    return await _login(session, settings, response, ip, username, password)


@router.post(
    "/refresh",
    response_model=TokenPairOut,
    summary="Exchange a refresh token for a new pair (the old one is spent)",
    responses=problem_responses(401, 422),
)
async def refresh(
    body: RefreshIn, session: SessionDep, settings: SettingsDep, response: Response, ip: ClientIP
) -> TokenPairOut:
    pair = await service.refresh(session, settings, token=body.refresh_token, client_ip=ip)
    await session.commit()
    _no_store(response)
    return _pair_out(pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out: revoke this session's refresh and access tokens",
    responses=problem_responses(401, 403),
)
async def logout(user: TokenUser, caller: CallerDep, session: SessionDep, ip: ClientIP) -> None:
    await service.logout(session, user=user, family_id=caller.family_id, client_ip=ip)


@router.post(
    "/anonymous",
    response_model=AnonymousIdentityOut,
    summary="Get an anonymous identity (development only; for clients without cookies)",
    description="Where anonymous use is allowed (never in production), every anonymous client "
    "is its own owner: its analyses, Idempotency-Keys and conversations are invisible to other "
    "clients. Browsers get the identity as a cookie on first use; scripts call this once and "
    f"send the value back as the `{anonymous.HEADER}` header. Sending it with the header "
    "continues that identity; otherwise a new one is issued.",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(403, 429),
)
async def anonymous_identity(caller: CallerDep, settings: SettingsDep) -> Response:
    if auth_required(settings) or caller.anonymous_id is None:
        raise ForbiddenError(
            "This server requires sign-in; there is no anonymous use.", code="anonymous_refused"
        )
    anon_id = caller.anonymous_id
    token = anonymous.token_for(settings, anon_id)
    response = JSONResponse(
        AnonymousIdentityOut(anonymous_id=token, header=anonymous.HEADER).model_dump()
    )
    response.headers.append(
        "set-cookie", anonymous.cookie_header(token, secure=settings.is_production).decode()
    )
    _no_store(response)
    return response


@router.get(
    "/me",
    response_model=UserOut,
    summary="The signed-in user (bearer tokens only: an API key is not the account)",
    responses=problem_responses(401, 403),
)
async def me(user: TokenUser) -> UserOut:
    return user_out(user)


@router.get(
    "/google",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start Google sign-in (redirects to Google)",
    dependencies=_LOGIN_LIMIT,
    responses={
        302: {"description": "Redirect to Google"},
        **problem_responses(404, 422, 429, 503),
    },
)
async def google_start(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clients: GoogleClientsDep,
    return_to: Annotated[
        str | None,
        Query(
            max_length=1000,
            pattern=_PRINTABLE,
            description="Where to send the one-time code (an allowed origin)",
        ),
    ] = None,
) -> RedirectResponse:
    client = clients.get(settings)
    target = google.check_return_to(settings, return_to)
    redirect_uri = str(request.url_for("google_callback"))
    url, state = await google.start(session, client, redirect_uri=redirect_uri, return_to=target)
    await session.commit()
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    # Lax: the callback is a top-level navigation from Google, which must carry it.
    response.set_cookie(
        google.STATE_COOKIE,
        state,
        max_age=int(google.STATE_TTL.total_seconds()),
        path=google.COOKIE_PATH,
        httponly=True,
        secure=settings.is_production,
        samesite="lax",
    )
    # Strict: only the exchange (a same-site POST) needs it; no cross-site request carries it.
    response.set_cookie(
        google.BINDING_COOKIE,
        google.browser_binding(settings, state),
        max_age=int((google.STATE_TTL + OAUTH_CODE_TTL).total_seconds()),
        path=google.COOKIE_PATH,
        httponly=True,
        secure=settings.is_production,
        samesite="strict",
    )
    return response


@router.get(
    "/google/callback",
    name="google_callback",
    response_model=OneTimeCodeOut,
    summary="Google's redirect target: answers a one-time code (never tokens) for the client",
    responses={
        302: {"description": "Redirect to return_to with ?code="},
        **problem_responses(400, 401, 404, 409, 503),
    },
)
async def google_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clients: GoogleClientsDep,
    ip: ClientIP,
    state: Annotated[str | None, Query(max_length=256, pattern=_PRINTABLE)] = None,
    code: Annotated[str | None, Query(max_length=2048, pattern=_PRINTABLE)] = None,
    error: Annotated[str | None, Query(max_length=256, pattern=_PRINTABLE)] = None,
) -> Response:
    client = clients.get(settings)
    try:
        identity, row = await google.finish(
            session,
            client,
            state=state,
            code=code,
            error=error,
            cookie_state=request.cookies.get(google.STATE_COOKIE),
        )
    except Exception:
        await session.commit()  # the state is spent even when the sign-in fails
        raise
    user = await google.user_for_identity(session, identity, client_ip=ip)
    one_time = await service.create_one_time_code(
        session, user, binding=google.browser_binding(settings, row.state)
    )
    await session.commit()
    expires_in = int(OAUTH_CODE_TTL.total_seconds())
    response: Response
    if row.return_to:
        parts = urlsplit(row.return_to)
        query = "&".join(p for p in (parts.query, urlencode({"code": one_time})) if p)
        response = RedirectResponse(
            urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")),
            status_code=status.HTTP_302_FOUND,
        )
    else:
        response = JSONResponse({"code": one_time, "expires_in": expires_in})
    _no_store(response)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.delete_cookie(google.STATE_COOKIE, path=google.COOKIE_PATH)
    return response


@router.post(
    "/google/exchange",
    response_model=TokenPairOut,
    summary="Exchange the one-time code from the Google callback for tokens",
    description="Only the browser that started the sign-in can exchange its code: the request "
    "must carry the `medsight_oauth_binding` cookie set by `GET /api/v1/auth/google` "
    "(`fetch(..., {credentials: 'same-origin'})`). A code without it is refused (401).",
    dependencies=_LOGIN_LIMIT,
    responses=problem_responses(401, 422, 429),
)
async def google_exchange(
    request: Request,
    body: CodeExchangeIn,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    ip: ClientIP,
) -> TokenPairOut:
    pair = await service.exchange_one_time_code(
        session,
        settings,
        code=body.code,
        binding=request.cookies.get(google.BINDING_COOKIE),
        client_ip=ip,
    )
    await session.commit()
    _no_store(response)
    response.delete_cookie(google.BINDING_COOKIE, path=google.COOKIE_PATH)
    return _pair_out(pair)


# --- API keys: the account's machine credentials -----------------------------------------
keys_router = APIRouter(prefix="/api/v1/users", tags=["api-keys"])


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


@keys_router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreatedOut,
    summary="Create an API key (the key is shown only in this response)",
    responses=problem_responses(401, 403, 422),
)
async def create_key(
    body: ApiKeyCreateIn, user: TokenUser, session: SessionDep, ip: ClientIP
) -> ApiKeyCreatedOut:
    created = await api_keys.create_key(
        session, user, name=body.name, scopes=list(body.scopes), client_ip=ip
    )
    return ApiKeyCreatedOut(**_key_out(created.row).model_dump(), key=created.secret)


@keys_router.get(
    "/me/api-keys",
    response_model=list[ApiKeyOut],
    summary="Your API keys (prefixes only, never the keys)",
    responses=problem_responses(401, 403),
)
async def list_keys(user: TokenUser, session: SessionDep) -> list[ApiKeyOut]:
    return [_key_out(row) for row in await api_keys.list_keys(session, user)]


@keys_router.delete(
    "/me/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key",
    responses=problem_responses(401, 403, 404),
)
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")],
    user: TokenUser,
    session: SessionDep,
    ip: ClientIP,
) -> ApiKeyOut:
    return _key_out(await api_keys.revoke_key(session, user, key_id, client_ip=ip))
