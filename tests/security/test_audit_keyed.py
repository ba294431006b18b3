"""The audit chain is keyed (issue 16, item 8): someone who can write to the database but does
not hold AUDIT_HMAC_KEY cannot remove or edit events and re-hash the chain after them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import create_engine, text

from backend.audit.service import legacy_event_hash
from backend.db.migrate import upgrade_database
from tests.conftest import REPO, TEST_AUDIT_KEY, make_settings
from tests.security.conftest import build_app, client_for, fresh_peer, register_and_login


def _medsight_verify(db_url: str, *args: str, key: str = TEST_AUDIT_KEY) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDSIGHT_", "PYTEST"))}
    env.update(DATABASE_URL=db_url, AUDIT_HMAC_KEY=key, ENVIRONMENT="test", LOG_LEVEL="ERROR")
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "backend.cli", "audit", "verify", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    start = done.stdout.find("{")
    assert start >= 0, done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout[start:])


def _rows(sync_url: str) -> list[dict[str, Any]]:
    engine = create_engine(sync_url)
    with engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM audit_events ORDER BY id"))
        rows = [dict(r._mapping) for r in result]
    engine.dispose()
    return rows


def _rehash_forward(sync_url: str, start_index: int, digest: Any) -> None:
    """What the auditor did: rewrite every hash from `start_index` on so the links hold again."""
    from datetime import datetime

    rows = _rows(sync_url)
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        prev = rows[start_index - 1]["hash"] if start_index else "0" * 64
        for row in rows[start_index:]:
            ts = row["ts"]
            if isinstance(ts, str):
                ts = datetime.fromisoformat(ts)
            details = row["details"]
            if isinstance(details, str):
                details = json.loads(details)
            new = digest(
                prev_hash=prev,
                ts=ts,
                actor_id=row["actor_id"],
                action=row["action"],
                resource_type=row["resource_type"],
                resource_id=row["resource_id"],
                client_ip=row["client_ip"],
                details=details or {},
            )
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id"),
                {"p": prev, "h": new, "id": row["id"]},
            )
            prev = new
    engine.dispose()


@pytest.fixture
async def audited_db(tmp_path: Path) -> tuple[str, str]:
    """A database of its own with real audit events: registrations and sign-ins."""
    path = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{path}"
    await anyio.to_thread.run_sync(upgrade_database, url)
    application = build_app(make_settings(tmp_path, url))
    async with application.router.lifespan_context(application):
        async with client_for(application, fresh_peer()) as client:
            for _ in range(3):
                await register_and_login(client)
    return url, f"sqlite:///{path}"


def _tamper(sync_url: str) -> int:
    """Delete one event and rewrite the client address of another; returns the edited index."""
    rows = _rows(sync_url)
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": rows[2]["id"]})
        conn.execute(
            text("UPDATE audit_events SET client_ip = '192.0.2.1' WHERE id = :id"),
            {"id": rows[3]["id"]},
        )
    engine.dispose()
    return 2


async def test_rehashing_after_a_deletion_is_detected(audited_db: tuple[str, str]) -> None:
    url, sync_url = audited_db
    code, report = _medsight_verify(url)
    assert code == 0 and report["ok"] is True and report["keyed"] >= 6, report
    assert "does_not_prove" in report and "anchor" in report["does_not_prove"]
    start = _tamper(sync_url)
    # The audit's attack: re-hash the chain forward with plain SHA-256 (no key needed).
    _rehash_forward(sync_url, start, legacy_event_hash)
    code, report = _medsight_verify(url)
    assert code == 1 and report["ok"] is False and report["kind"] == "content", report


async def test_rehashing_the_whole_chain_without_the_key_is_detected(
    audited_db: tuple[str, str],
) -> None:
    url, sync_url = audited_db
    _tamper(sync_url)
    _rehash_forward(sync_url, 0, legacy_event_hash)  # every row now "valid" unkeyed SHA-256
    code, report = _medsight_verify(url)
    assert code == 1 and report["ok"] is False and report["keyed"] == 0, report
    # ... and with a guessed key, every row fails at once.
    import hmac as hmac_module

    from backend.audit.service import _canonical

    def guessed(**event: Any) -> str:
        return hmac_module.new(b"guess", _canonical(**event), "sha256").hexdigest()

    _rehash_forward(sync_url, 0, guessed)
    code, report = _medsight_verify(url)
    assert code == 1 and report["kind"] == "content" and report["checked"] == 0, report


async def test_an_anchor_catches_removal_of_the_newest_events(
    audited_db: tuple[str, str],
) -> None:
    url, sync_url = audited_db
    code, report = _medsight_verify(url)
    head = report["head"]
    rows = _rows(sync_url)
    engine = create_engine(sync_url)
    with engine.begin() as conn:  # drop the last two events: the rest is still a valid chain
        conn.execute(text("DELETE FROM audit_events WHERE id >= :id"), {"id": rows[-2]["id"]})
    engine.dispose()
    code, report = _medsight_verify(url)
    assert code == 0, report  # undetectable without an anchor, as documented
    code, report = _medsight_verify(url, "--anchor", head)
    assert code == 1 and "anchored head" in report["reason"], report
