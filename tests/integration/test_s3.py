"""STORAGE_BACKEND=s3 against moto's S3 server on loopback (no real S3, R2 or MinIO here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.main import create_app
from backend.storage import StorageError
from tests.conftest import fixture_images, make_settings

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev requirement")

BUCKET = "medsight-test"
CREDENTIALS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[Any]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def s3_storage(endpoint: str, bucket: str = BUCKET) -> Any:
    from backend.storage.s3 import S3Storage

    return S3Storage(
        bucket=bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


def test_s3_storage_round_trip_and_errors(s3_endpoint: str, bucket: Any) -> None:
    storage = s3_storage(s3_endpoint)
    storage.check()
    key = "uploads/2026/11/28/abc.png"
    storage.put(key, b"\x89PNG bytes")
    assert storage.exists(key)
    assert storage.get(key) == b"\x89PNG bytes"
    storage.put(key, b"replaced")  # an overwrite is whole, never mixed
    assert storage.get(key) == b"replaced"
    storage.delete(key)
    assert not storage.exists(key)
    with pytest.raises(StorageError, match="does not exist"):
        storage.get(key)
    storage.delete(key)  # deleting twice is not an error
    with pytest.raises(StorageError, match="not reachable"):
        s3_storage(s3_endpoint, bucket="no-such-bucket").check()


async def test_analysis_with_s3_storage_end_to_end(
    s3_endpoint: str, bucket: Any, tmp_path: Path, database_url: str
) -> None:
    """Upload through the API lands in the bucket; the worker reads it back from there."""
    settings = make_settings(
        tmp_path,
        database_url,
        storage_backend="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3_endpoint,
        rate_limit_analyze="100000/hour",  # the limiter's store is shared across tests
        **CREDENTIALS,
    )
    app = create_app(settings)
    image = fixture_images()[0]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30) as c:
            ready = (await c.get("/api/v1/health/ready")).json()
            checks = ready.get("checks", ready)
            assert checks["storage"] == {"ok": True, "backend": "s3"}
            accepted = await c.post(
                "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}
            )
            assert accepted.status_code == 202, accepted.text
            keys = [o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
            assert len(keys) == 1 and keys[0].startswith("uploads/")
            stored = bucket.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
            assert stored == image.read_bytes()
            local = tmp_path / "uploads"
            assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))
            task_id = accepted.json()["task_id"]
            deadline = time.monotonic() + 60
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = (await c.get(f"/api/v1/analyze/status/{task_id}")).json()
                if status["status"] in {"complete", "partial", "failed"}:
                    break
                await asyncio.sleep(0.2)
            assert status["status"] in {"complete", "partial", "failed"}, status
            # The input stage decoded the image it read back from S3.
            result = await c.get(f"/api/v1/analyze/result/{accepted.json()['session_id']}")
            assert result.status_code == 200, result.text
            body = result.json()
            assert body["stages"]["input"] == "ok", body["warnings"]
            assert body["image"]["width"] > 0
            if status["status"] == "failed":
                assert status["error"], status  # a failure always says why
