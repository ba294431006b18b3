"""Choose the storage backend from settings."""

from __future__ import annotations

from backend.config import Settings
from backend.storage.base import ObjectStorage
from backend.storage.local import LocalStorage


def build_storage(settings: Settings) -> ObjectStorage:
    if settings.storage_backend == "s3":
        from backend.storage.s3 import S3Storage

        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    assert settings.storage_dir is not None  # noqa: S101 - filled by the settings validator
    return LocalStorage(settings.storage_dir)
