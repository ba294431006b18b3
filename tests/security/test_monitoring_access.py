"""Who may read the drift monitor in production: an admin or the METRICS_TOKEN bearer, no one else.

Each case performs the access it claims is refused: no credentials, a wrong token, a signed-in
non-admin, an admin's API key.
"""

from __future__ import annotations

from sqlalchemy import update

from backend.db.models import User
from backend.db.session import transaction
from tests.conftest import parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, fresh_peer, register_and_login
from tests.security.test_hardening import PROD

METRICS_TOKEN = "m8Tq2Lx7Vn4Rk1Pz9Wc6Hy3Jb5Fd0Gs"
DRIFT = "/api/v1/monitoring/drift"


async def test_drift_in_production_needs_an_admin_or_the_metrics_token(app_with) -> None:
    async with (
        app_with(**PROD, metrics_token=METRICS_TOKEN) as app,
        client_for(app, fresh_peer()) as client,
    ):
        assert_problem(await client.get(DRIFT), 401)
        assert_problem(await client.get(DRIFT, headers={"Authorization": "Bearer nope"}), 401)
        assert_problem(
            await client.get(DRIFT, headers={"Authorization": f"Bearer {METRICS_TOKEN}x"}), 401
        )
        user = await register_and_login(client)
        r = await client.get(DRIFT, headers=user["headers"])
        assert_problem(r, 403)
        assert r.json()["code"] == "admin_required"

        r = await client.get(DRIFT, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] in {"ok", "warning", "drift"}

        async with transaction(parts(app).sessionmaker) as session:
            await session.execute(update(User).where(User.id == user["id"]).values(is_admin=True))
        r = await client.get(DRIFT, headers=user["headers"])
        assert r.status_code == 200, r.text

        # Even an admin's API key is refused: keys are scoped to analyses, chat and reports.
        created = await client.post(
            "/api/v1/users/me/api-keys",
            json={"name": "ops", "scopes": ["analyze:read"]},
            headers=user["headers"],
        )
        assert created.status_code == 201, created.text
        r = await client.get(DRIFT, headers={"X-API-Key": created.json()["key"]})
        assert_problem(r, 403)


async def test_drift_outside_production_is_open(app_with) -> None:
    async with app_with() as app, client_for(app, fresh_peer()) as client:
        r = await client.get(DRIFT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["window"] == 200 and body["min_n"] == 30  # the defaults
