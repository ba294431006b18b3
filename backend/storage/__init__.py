"""Object storage for uploads: local disk by default, S3-compatible when configured."""

from backend.storage.base import ObjectStorage, StorageError
from backend.storage.factory import build_storage

__all__ = ["ObjectStorage", "StorageError", "build_storage"]
