"""Chat about earlier analyses: the user's own dates, scores and trend; never another user's."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import transaction
from tests.conftest import parts
from tests.security.conftest import register_and_login


async def seed_analysis(app: FastAPI, owner_id: str, score: float, risk: str, days_ago: int) -> str:
    """A finished analysis of the owner's with this score, `days_ago` days old."""
    when = utcnow() - timedelta(days=days_ago)
    row = Analysis(
        owner_id=owner_id,
        owner_key=owner_id,
        image_key="uploads/none.png",
        image_sha256="0" * 64,
        image_format="png",
        image_width=256,
        image_height=256,
        status="complete",
        overall_status="COMPLETE",
        anomaly_score=score,
        risk_level=risk,
        created_at=when,
        completed_at=when,
    )
    async with transaction(parts(app).sessionmaker) as session:
        session.add(row)
        await session.flush()
        return row.id


async def ask(client: httpx.AsyncClient, headers: dict[str, str], message: str) -> dict[str, Any]:
    r = await client.post("/api/v1/chat", json={"message": message}, headers=headers)
    assert r.status_code == 200, r.text
    events: list[tuple[str, dict[str, Any]]] = []
    for block in r.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    text = "".join(d["text"] for name, d in events if name == "token")
    done = next(d for name, d in events if name == "done")
    return {"text": text, "done": done}


async def test_has_my_score_changed_uses_only_my_analyses(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await register_and_login(client)
    mallory = await register_and_login(client)
    await seed_analysis(app, alice["id"], 38.2, "LOW", days_ago=30)
    await seed_analysis(app, alice["id"], 71.4, "HIGH", days_ago=2)
    await seed_analysis(app, mallory["id"], 12.3, "LOW", days_ago=1)

    answer = await ask(client, alice["headers"], "Has my score changed since last time?")
    assert answer["done"]["intent"] == "history"
    text = answer["text"]
    assert "38.2" in text and "71.4" in text and "rose by 33.2 points" in text
    assert "LOW to HIGH" in text
    assert "12.3" not in text  # Mallory's analysis never reaches Alice's answer
    # The dates are the analyses' own.
    assert (utcnow() - timedelta(days=30)).strftime("%Y-%m-%d") in text

    # The attack: Mallory asks the same question and sees only her one analysis.
    answer = await ask(client, mallory["headers"], "Compare with my previous results")
    text = answer["text"]
    assert "12.3" in text and "38.2" not in text and "71.4" not in text
    assert "nothing to compare" in text.lower()


async def test_without_earlier_analyses_says_there_is_nothing_to_compare(
    client: httpx.AsyncClient,
) -> None:
    bob = await register_and_login(client)
    answer = await ask(client, bob["headers"], "Is my risk trend getting better over time?")
    assert answer["done"]["intent"] == "history"
    assert "no earlier finished analyses" in answer["text"].lower()
