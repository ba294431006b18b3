"""The storage protocol every backend implements."""

from __future__ import annotations

from typing import Protocol


class StorageError(RuntimeError):
    """A storage operation failed."""


class ObjectStorage(Protocol):
    """Bytes under string keys; writes are atomic (a reader never sees half an object)."""

    name: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def check(self) -> None: ...
