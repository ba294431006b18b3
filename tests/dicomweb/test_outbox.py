"""The PACS outbox without a PACS: who may claim a delivery, what is skipped, when it gives up,
and how the PACS's answers are read. Real database (SQLite or PostgreSQL), real sockets."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import select

from backend.contract import AnalysisResult
from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, PacsDelivery
from backend.db.session import Database, transaction
from backend.dicomweb.client import PacsError, _check
from backend.dicomweb.delivery import PacsSender, backoff_s
from backend.dicomweb.outbox import Outbox, new_delivery
from backend.storage import build_storage
from tests.conftest import make_settings


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database.connect(database_url)
    yield db
    await db.aclose()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def add_analysis(
    database: Database,
    *,
    status: str = "complete",
    result: AnalysisResult | None = None,
    image_key: str = "uploads/none.dcm",
    finished_ago: timedelta = timedelta(0),
    study: str = "1.2.826.0.1.3680043.8.498.77",
) -> PacsDelivery:
    analysis_id = new_id()
    row = new_delivery(analysis_id, study)
    async with transaction(database.sessionmaker) as session:
        session.add(
            Analysis(
                id=analysis_id,
                owner_key="anonymous",
                image_key=image_key,
                image_sha256="0" * 64,
                image_format="dicom",
                image_width=256,
                image_height=256,
                status=status,
                result=result.model_dump(mode="json") if result is not None else None,
                completed_at=utcnow() - finished_ago if status != "running" else None,
            )
        )
        session.add(row)
    return row


async def row_of(database: Database, delivery_id: str) -> PacsDelivery:
    async with database.sessionmaker() as session:
        found = await session.scalar(select(PacsDelivery).where(PacsDelivery.id == delivery_id))
    assert found is not None
    return found


async def mine(outbox: Outbox, delivery_id: str) -> list[str]:
    claims = await outbox.claim(50, timedelta(minutes=2))
    return [c.id for c in claims if c.id == delivery_id]


async def test_only_finished_and_due_deliveries_are_claimed_once(database: Database) -> None:
    running = await add_analysis(database, status="running")
    done = await add_analysis(database)
    outbox = Outbox(database.sessionmaker, "sender-a")
    claimed_ids = {c.id for c in await outbox.claim(50, timedelta(minutes=2))}
    assert done.id in claimed_ids
    assert running.id not in claimed_ids  # its analysis is still running
    # Claimed: nobody else gets it while the lease holds.
    assert await mine(Outbox(database.sessionmaker, "sender-b"), done.id) == []
    claimed = await row_of(database, done.id)
    assert claimed.status == "sending" and claimed.claimed_by == "sender-a"
    assert claimed.attempts == 1


async def test_a_dead_senders_claim_is_taken_over_and_its_late_answer_ignored(
    database: Database,
) -> None:
    row = await add_analysis(database)
    dead = Outbox(database.sessionmaker, "host:1:pacs")
    [old_claim] = [c for c in await dead.claim(50, timedelta(seconds=-1)) if c.id == row.id]
    # The lease ran out (it was born expired): another process takes the delivery over.
    heir = Outbox(database.sessionmaker, "host:2:pacs")
    [claim] = [c for c in await heir.claim(50, timedelta(minutes=2)) if c.id == row.id]
    assert claim.attempts == 2
    # The first sender wakes up and reports: its outcome no longer counts.
    assert await dead.delivered(old_claim) is False
    assert await heir.retry(claim, "the PACS is unreachable", utcnow() + timedelta(hours=1))
    after = await row_of(database, row.id)
    assert after.status == "retrying" and after.claimed_by == "host:2:pacs"
    # Not due before its time.
    assert await mine(heir, row.id) == []


async def test_nothing_to_send_is_skipped_and_a_dead_pacs_is_given_up(
    database: Database, tmp_path: Path, analysed: tuple[bytes, AnalysisResult]
) -> None:
    settings = make_settings(
        tmp_path,
        "sqlite+aiosqlite:///unused.db",
        pacs_dicomweb_url=f"http://127.0.0.1:{closed_port()}/dicom-web",
        pacs_give_up_after_h=72,
        pacs_timeout_s=5,
    )
    storage = build_storage(settings)
    source, result = analysed
    storage.put("uploads/source.dcm", source)
    study = str(pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True).StudyInstanceUID)
    failed = await add_analysis(database, status="failed")
    unscored = await add_analysis(
        database, result=result.model_copy(update={"vision": None}), image_key="uploads/source.dcm"
    )
    kept = {"result": result, "image_key": "uploads/source.dcm", "study": study}
    fresh = await add_analysis(database, **kept)
    stale = await add_analysis(database, **kept, finished_ago=timedelta(hours=73))
    elsewhere = await add_analysis(database, result=result, image_key="uploads/source.dcm")
    sender = PacsSender(settings, database, storage)
    try:
        ours = {failed.id, unscored.id, fresh.id, stale.id, elsewhere.id}
        for claim in await sender.outbox.claim(50, sender.lease):
            if claim.id in ours:
                await sender.deliver(claim)
    finally:
        await sender.aclose()
    assert (await row_of(database, failed.id)).status == "skipped"
    assert (await row_of(database, unscored.id)).status == "skipped"
    retrying = await row_of(database, fresh.id)
    assert retrying.status == "retrying" and "unreachable" in (retrying.last_error or "")
    assert retrying.next_attempt_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None)
    given_up = await row_of(database, stale.id)
    assert given_up.status == "failed" and (given_up.last_error or "").startswith("gave up")
    # A stored image that is not in the row's study is never sent anywhere.
    wrong = await row_of(database, elsewhere.id)
    assert wrong.status == "failed" and "not in the study" in (wrong.last_error or "")


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_s(n, 10, 600, jitter=0) for n in range(1, 10)]
    assert delays[:4] == [10, 20, 40, 80] and max(delays) == 600
    jittered = {round(backoff_s(3, 10, 600), 3) for _ in range(20)}
    assert len(jittered) > 1 and all(32 <= d <= 48 for d in jittered)


def answer(status: int, body: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


def refs(tag: str, *items: dict) -> dict:
    return {tag: {"vr": "SQ", "Value": list(items)}}


def item(uid: str, reason: int | None = None) -> dict:
    found = {"00081155": {"vr": "UI", "Value": [uid]}}
    if reason is not None:
        found["00081197"] = {"vr": "US", "Value": [reason]}
    return found


@pytest.mark.parametrize(
    ("response", "transient"),
    [
        (answer(200, refs("00081199", item("1.1"), item("1.2"))), None),  # delivered
        (answer(200), None),  # no body: stored
        (answer(200, {"00081190": {"vr": "UR", "Value": ["http://pacs/x"]}}), None),  # no list
        (answer(200, refs("00081199", item("1.1"))), True),  # one missing
        (answer(202, refs("00081198", item("1.2", 0xA700))), True),  # out of resources
        (answer(409, refs("00081198", item("1.1", 0xC000), item("1.2", 0x0122))), False),
        (answer(503), True),
        (answer(401), True),  # credentials can be fixed without touching the row
        (answer(400), False),
        (answer(413), False),
    ],
)
def test_the_pacs_answer_says_whether_to_retry(
    response: httpx.Response, transient: bool | None
) -> None:
    if transient is None:
        _check(response, ["1.1", "1.2"])
        return
    with pytest.raises(PacsError) as caught:
        _check(response, ["1.1", "1.2"])
    assert caught.value.transient is transient
