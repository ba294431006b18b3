"""STOW-RS limits and access: instance size and count, the path's own body limit, API-key
scopes, the rate limit, and erasure of what a STOW-RS upload left."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pydicom
from fastapi import FastAPI
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from sqlalchemy import func, select

from backend.db.models import PacsDelivery
from backend.main import create_app
from tests.conftest import make_settings, parts
from tests.data.dicom.fixtures import CODECS, compress, have_dcmtk
from tests.dicomweb.helpers import STOW, cr_image, first, private, related, sequence
from tests.security.conftest import client_for, fast_argon2, fresh_peer, register_and_login

__all__ = ["fast_argon2"]  # its autouse fixture applies here too


@asynccontextmanager
async def app_with(tmp: Path, database_url: str, **settings: Any) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(tmp, database_url, **settings))
    async with application.router.lifespan_context(application):
        yield application


def uid_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


async def test_instance_size_and_count_limits_refuse_per_instance(
    tmp_path: Path, database_url: str
) -> None:
    small = cr_image()  # 256 x 256 x 2 bytes: about 130 KB
    async with (
        app_with(tmp_path / "a", database_url, max_upload_size_mb=0.05) as app,
        client_for(app, fresh_peer()) as client,
    ):
        body, headers = related(small)
        r = await client.post(STOW, content=body, headers=headers)
        assert r.status_code == 409, r.text
        [failed] = sequence(r.json(), "00081198")
        assert first(failed, "00081197") == 0xA700  # out of resources
        assert first(failed, "00081155") == uid_of(small)  # named from the kept head
        assert "limit" in private(failed, 3)
    async with (
        app_with(tmp_path / "b", database_url, dicomweb_max_instances=1) as app,
        client_for(app, fresh_peer()) as client,
    ):
        second = cr_image()
        body, headers = related(cr_image(), second)
        r = await client.post(STOW, content=body, headers=headers)
        assert r.status_code == 202, r.text
        [failed] = sequence(r.json(), "00081198")
        assert first(failed, "00081197") == 0xA700
        assert first(failed, "00081155") == uid_of(second)


async def test_stow_has_its_own_body_limit(tmp_path: Path, database_url: str) -> None:
    # Everything else: max(0.2, 0.1 + 1) = 1.1 MB; STOW-RS requests: 3 MB.
    async with (
        app_with(
            tmp_path,
            database_url,
            max_request_body_mb=0.2,
            max_upload_size_mb=0.1,
            dicomweb_max_request_mb=3,
        ) as app,
        client_for(app, fresh_peer()) as client,
    ):
        two_mb = bytes(2 * 1024 * 1024)
        r = await client.post("/api/v1/analyze", files={"image": ("x.dcm", two_mb)})
        assert r.status_code == 413
        body, headers = related(two_mb)
        r = await client.post(STOW, content=body, headers=headers)
        assert r.status_code == 409, r.text  # read whole; the instance itself is over 0.1 MB
        assert first(sequence(r.json(), "00081198")[0], "00081197") == 0xA700
        body, headers = related(bytes(4 * 1024 * 1024))
        r = await client.post(STOW, content=body, headers=headers)
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_api_keys_need_analyze_write_and_requests_are_rate_limited(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        app_with(tmp_path, database_url, auth_required=True, rate_limit_dicomweb="3/hour") as app,
        client_for(app, fresh_peer()) as client,
    ):
        body, headers = related(cr_image())
        r = await client.post(STOW, content=body, headers=headers)
        assert r.status_code == 401  # sign-in required
        user = await register_and_login(client)
        keys = {}
        for scopes in (["analyze:read"], ["analyze:write"]):
            r = await client.post(
                "/api/v1/users/me/api-keys", headers=user["headers"], json={"scopes": scopes}
            )
            keys[scopes[0]] = {"X-API-Key": r.json()["key"]}
        r = await client.post(STOW, content=body, headers={**headers, **keys["analyze:read"]})
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
        r = await client.post(STOW, content=body, headers={**headers, **keys["analyze:write"]})
        assert r.status_code == 200, r.text
        r = await client.post(STOW, content=body, headers={**headers, **user["headers"]})
        assert r.status_code == 200, r.text  # the same instance again: its first analysis
        r = await client.post(STOW, content=body, headers={**headers, **user["headers"]})
        assert r.status_code == 429 and "Retry-After" in r.headers


async def test_erasing_the_account_erases_its_pacs_deliveries(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        app_with(
            tmp_path,
            database_url,
            auth_required=True,
            # A PACS that is not there: the rows exist, nothing is ever delivered.
            pacs_dicomweb_url="http://127.0.0.1:9/dicom-web",
            pacs_retry_base_s=3600,
        ) as app,
        client_for(app, fresh_peer()) as client,
    ):
        user = await register_and_login(client)
        body, headers = related(cr_image())
        r = await client.post(STOW, content=body, headers={**headers, **user["headers"]})
        session_id = private(sequence(r.json(), "00081199")[0], 1)

        async def deliveries() -> int:
            async with parts(app).sessionmaker() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(PacsDelivery)
                    .where(PacsDelivery.analysis_id == session_id)
                )
            return int(count or 0)

        assert await deliveries() == 1
        r = await client.delete("/api/v1/users/me", headers=user["headers"])
        assert r.status_code in {200, 204}, r.text
        assert await deliveries() == 0


async def test_compressed_and_deflated_instances_are_accepted(
    tmp_path: Path, stow_app: FastAPI
) -> None:
    """The codecs' scores are tested in tests/unit/pipeline/test_dicom_codecs.py; here, that
    each transfer syntax gets through STOW-RS and is named in the answer."""
    originals = [cr_image(SOPInstanceUID=generate_uid()) for _ in CODECS]
    instances = (
        [compress(data, codec, tmp_path) for data, codec in zip(originals, CODECS, strict=True)]
        if have_dcmtk()
        else []
    )
    # Deflated: the header is not read before the decoder's bounded inflate, which names it.
    ds = pydicom.dcmread(io.BytesIO(cr_image()))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = io.BytesIO()
    ds.save_as(deflated, enforce_file_format=True)
    instances.append(deflated.getvalue())
    async with client_for(stow_app, fresh_peer()) as client:
        body, headers = related(*instances)
        r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 200, r.text
    stored = [first(item, "00081155") for item in sequence(r.json(), "00081199")]
    assert stored == [uid_of(data) for data in instances]


async def test_a_flood_of_parts_is_cut_short(tmp_path: Path, database_url: str) -> None:
    """Past DICOMWEB_MAX_INSTANCES, 100 more instances are named, then reading stops."""
    from backend.dicomweb.service import MAX_NAMED_EXTRAS

    async with (
        app_with(tmp_path, database_url, dicomweb_max_instances=2) as app,
        client_for(app, fresh_peer()) as client,
    ):
        body, headers = related(*[b"tiny"] * 1000)
        r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 409, r.text
    failed = sequence(r.json(), "00081198")
    assert len(failed) == 2 + MAX_NAMED_EXTRAS + 1
    assert [first(f, "00081197") for f in failed[:2]] == [0xC000, 0xC000]  # not DICOM
    assert {first(f, "00081197") for f in failed[2:]} == {0xA700}
    assert "not read" in private(failed[-1], 3)
