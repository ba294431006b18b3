"""Derived ONNX graphs: no planted cache folder, no swapped graph is loaded (issue 16, Low)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from backend.ml import onnx_cache
from backend.ml.onnx_text import writable_dir


def test_a_folder_planted_in_the_temp_directory_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"medsight-onnx-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # another local user prepared it, open to all
    unusable = tmp_path / "a-file"
    unusable.write_bytes(b"")
    chosen = writable_dir(unusable / "cache")  # MODEL_CACHE_DIR cannot be created
    assert chosen != planted and chosen.parent == tmp_path
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o700
    # A link planted under the fixed name is refused too.
    planted.chmod(0o700)
    planted.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    planted.symlink_to(tmp_path / "elsewhere")
    assert writable_dir(unusable / "cache") not in {planted, tmp_path / "elsewhere"}


def test_a_private_fixed_folder_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = onnx_cache.temp_cache_dir()
    assert first == tmp_path / f"medsight-onnx-{os.getuid()}"
    assert onnx_cache.temp_cache_dir() == first


def test_a_replaced_graph_fails_its_digest(tmp_path: Path) -> None:
    graph = tmp_path / "ner-abc.int8.onnx"
    graph.write_bytes(b"\x08\x07 the exported graph")
    assert not onnx_cache.verified(graph)  # no digest recorded: exported again
    onnx_cache.record_digest(graph)
    assert onnx_cache.verified(graph)
    graph.write_bytes(b"\x08\x07 a graph someone swapped in")
    assert not onnx_cache.verified(graph)
