from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from backend.ml.vision import BackboneWeightsMissing, ChecksumMismatch, build_backbone, load_scorer
from backend.ml.vision.backbones import VGG16

from .conftest import MODEL_DIR


def test_tampered_weights_fail_to_load_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "v1"
    shutil.copytree(MODEL_DIR, bad, ignore=shutil.ignore_patterns(".onnx", ".cache"))
    w = bad / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        load_scorer(bad, backend="torch")


def test_metadata_records_what_the_scorer_needs() -> None:
    meta = json.loads((MODEL_DIR / "metadata.json").read_text())
    for key in (
        "backbone",
        "input_size",
        "dims",
        "calibration",
        "training",
        "metrics",
        "weights_sha256",
    ):
        assert key in meta
    cal = meta["calibration"]
    assert set(cal["stats"]) >= {"patch", "knn", "recon", "kl", "vit"}
    assert 0 < cal["fusion"]["default"]["threshold"] < 100
    assert "data_digest" in meta["training"]
    assert (MODEL_DIR / "weights.safetensors").stat().st_size <= 60 * 2**20


def test_vgg16_refuses_to_serve_random_weights(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsMissing, match="refusing to serve random weights"):
        build_backbone("vgg16")
    with pytest.raises(BackboneWeightsMissing):
        build_backbone("vgg16", vgg16_weights=tmp_path / "missing.pth")
    # A torchvision-format state dict (same keys and shapes) loads unchanged.
    state = VGG16().state_dict()
    torch.save(state, tmp_path / "vgg16.pth")
    bb = build_backbone("vgg16", vgg16_weights=tmp_path / "vgg16.pth")
    assert bb.weights_source == "file:vgg16.pth"
    assert torch.equal(bb.features[0].weight, state["features.0.weight"])
    mid, deep, top = bb(torch.rand(1, 1, 224, 224))
    assert (
        mid.shape[1:] == (256, 28, 28)
        and deep.shape[1:] == (512, 14, 14)
        and top.shape[1:] == (512, 7, 7)
    )
