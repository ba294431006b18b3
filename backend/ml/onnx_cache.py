"""Derived ONNX graphs on disk: a private cache folder, and a digest checked before each load.

A graph is code for ONNX Runtime: one planted or swapped in a shared folder would run inside the
service. The cache falls back from MODEL_CACHE_DIR to a folder in the system temp directory only
if that folder is a real directory (not a link) owned by this user and closed to others; else a
fresh random one is made. Each graph is written with a `.sha256` beside it, and a graph whose
file no longer matches (corrupted, truncated, replaced) is exported again instead of loaded.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def _private(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def temp_cache_dir() -> Path:
    """A per-user folder in the temp directory that nobody else can have prepared or can write."""
    fixed = Path(tempfile.gettempdir()) / f"medsight-onnx-{os.getuid()}"
    try:
        fixed.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return Path(tempfile.mkdtemp(prefix="medsight-onnx-"))
    if _private(fixed):
        return fixed
    # Someone else made it, or made it a link, or left it open: do not use it.
    return Path(tempfile.mkdtemp(prefix="medsight-onnx-"))


def _digest_path(graph: Path) -> Path:
    return graph.with_name(graph.name + ".sha256")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record_digest(graph: Path) -> None:
    """Write `<graph>.sha256` (after the graph itself is in place)."""
    tmp = _digest_path(graph).with_suffix(".tmp")
    tmp.write_text(file_sha256(graph), encoding="ascii")
    os.replace(tmp, _digest_path(graph))


def verified(graph: Path) -> bool:
    """The graph exists and still matches the digest recorded when it was written."""
    digest = _digest_path(graph)
    if not graph.is_file() or not digest.is_file():
        return False
    try:
        return digest.read_text(encoding="ascii").strip() == file_sha256(graph)
    except OSError:
        return False
