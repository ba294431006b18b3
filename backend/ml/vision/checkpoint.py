"""Checkpoint and calibration files: safetensors + JSON metadata, sha256 verified at load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
FORMAT = "medsight-vision/1"
CALIBRATION_FORMAT = "medsight-vision-calibration/1"


class ChecksumMismatch(RuntimeError):
    """The weights file does not match the sha256 recorded in its metadata."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    out_dir: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Write weights + metadata (with the weights' sha256); returns the metadata written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wpath = out_dir / WEIGHTS_FILE
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(wpath))
    wpath.chmod(0o644)  # safetensors writes 0600; the service may run as another user
    meta = dict(metadata)
    meta["format"] = FORMAT
    meta["weights_file"] = WEIGHTS_FILE
    meta["weights_sha256"] = sha256_file(wpath)
    meta["weights_bytes"] = wpath.stat().st_size
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def load_checkpoint(model_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read metadata, verify the weights' sha256, then load the tensors."""
    model_dir = Path(model_dir)
    mpath = model_dir / METADATA_FILE
    if not mpath.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {model_dir}")
    meta = json.loads(mpath.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{mpath}: unsupported format {meta.get('format')!r}")
    wpath = model_dir / meta.get("weights_file", WEIGHTS_FILE)
    if not wpath.is_file():
        raise FileNotFoundError(f"weights file missing: {wpath}")
    actual = sha256_file(wpath)
    if actual != meta.get("weights_sha256"):
        raise ChecksumMismatch(
            f"sha256 mismatch for {wpath}: metadata says {meta.get('weights_sha256')}, "
            f"file is {actual}; "
            "the checkpoint is corrupt or was modified - refusing to load it"
        )
    return load_file(str(wpath)), meta


BANKS = ("patch_bank", "knn_bank", "ood_bank")


def save_calibration(
    path: Path, banks: dict[str, torch.Tensor], calibration: dict[str, Any]
) -> str:
    """Write the normal banks (fp16) + the calibration dict (safetensors metadata); -> sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CALIBRATION_FORMAT, "calibration": json.dumps(calibration, sort_keys=True)}
    save_file({k: banks[k].half().contiguous() for k in BANKS}, str(path), metadata=meta)
    return sha256_file(path)


def load_calibration(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Return (banks, calibration dict, file sha256)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"{path} is not a MedSight vision calibration file")
        banks = {k: fh.get_tensor(k).float() for k in BANKS}
    return banks, json.loads(meta["calibration"]), sha256_file(path)


def read_calibration_meta(path: Path) -> tuple[dict[str, Any], str]:
    """The calibration dict and file sha256, without reading the banks."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"{path} is not a MedSight vision calibration file")
    return json.loads(meta["calibration"]), sha256_file(path)
