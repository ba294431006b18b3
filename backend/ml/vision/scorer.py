"""The scoring API the pipeline uses: ``load_scorer`` -> ``VisionScorer.score_batch``.

Thread-safety: a ``VisionScorer`` may be called from worker threads, one call at a time per
scorer (an internal lock serialises concurrent calls); use one scorer per worker for parallelism.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from backend.config import default_models_dir
from backend.ml.onnx_cache import verified
from backend.ml.onnx_text import default_cache_dir

from .backbones import build_backbone
from .checkpoint import load_calibration, load_checkpoint
from .fusion import (
    FUSION_MODES,
    anomaly_scores,
    component_values,
    fused_z,
    model_confidence,
    ood_scores,
    risk_level,
    score_to_fz,
)
from .heatmap import heatmap_from_patch_map, top_regions
from .model import OUTPUT_NAMES, ScorerNet
from .onnx_runtime import OnnxScorer, cache_path, export_onnx, onnx_available
from .population import (
    ACQUISITION,
    acquisition_values,
    calibration_provenance,
    input_statistics,
    load_reference,
    outside_population,
    reference_id,
    site_reference,
)
from .preprocessing import (
    colourfulness,
    resize_gray,
    to_gray_uint8,
    to_network_input,
    trim_frame,
)
from .vae import FeatureVAE
from .vit import LatentViT

DEFAULT_MODEL_DIR = default_models_dir() / "vision" / "v1"
BACKENDS = ("auto", "torch", "onnx")
COLOUR_LIMIT = 12.0  # Hasler-Suesstrunk colourfulness above this = a colour photo, not an X-ray
# The most model_confidence an image outside the reference population gets: how far its score
# lies from the threshold is measured against the reference's normals, which it is unlike.
OUTSIDE_POPULATION_CONFIDENCE = 0.5


class Placement(NamedTuple):
    """An input image's size and the box of it the network saw (a uniform frame is outside)."""

    height: int
    width: int
    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class VisionResult:
    anomaly_score: float  # 0-100
    risk_level: str  # "LOW" | "MODERATE" | "HIGH"; below threshold never HIGH
    threshold: float  # same 0-100 scale
    components: dict[str, dict[str, float]]
    model_confidence: float  # 0-1: 0 at the decision threshold, ->1 far from it; x0.25 when OOD
    heatmap: npt.NDArray[np.float32]  # HxW at the original input size, values in [0, 1]
    top_regions: list[
        dict[str, float]
    ]  # {"x","y","width","height","confidence"} in original pixels
    ood_score: float
    is_chest_xray: bool
    # Input statistics the drift monitor and the population check use (intensities in 0-1 of
    # the network input; feature_distance is ood_score: the distance to the normal reference).
    input_stats: dict[str, float] = field(default_factory=dict)
    # Which of those fall outside the reference population's range (empty: inside it).
    outside_population: tuple[str, ...] = ()


def build_net(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], vgg16_weights: Path | None = None
) -> ScorerNet:
    """Assemble a ScorerNet from checkpoint tensors; the backbone comes from its package/file."""
    dims = meta["dims"]
    backbone = build_backbone(
        meta["backbone"], image_size=meta["input_size"], vgg16_weights=vgg16_weights
    )
    vae = FeatureVAE(dims["feature"], dims["latent"])
    vae.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("vae.")})
    vit = LatentViT(dims["latent"], **dims.get("vit", {}))
    vit.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("vit.")})
    net = ScorerNet(
        backbone,
        tensors["patch_bank"].float(),
        tensors["knn_bank"].float(),
        tensors["ood_bank"].float(),
        vae,
        vit,
        knn_k=meta["knn_k"],
    )
    return net.eval()


class VisionScorer:
    """Scores 2-D uint8 grayscale images (any size); see ``VisionResult``."""

    def __init__(
        self,
        net: ScorerNet,
        metadata: dict[str, Any],
        *,
        calibration: dict[str, Any],
        calibration_sha256: str | None = None,
        reference: dict[str, Any] | None = None,
        backend: str = "auto",
        device: str = "cpu",
        fusion: str = "default",
        onnx_cache_dir: Path | None = None,
        onnx_threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        if fusion not in FUSION_MODES:
            raise ValueError(f"fusion must be one of {FUSION_MODES}")
        self.net = net
        self.metadata = metadata
        self.version: str = metadata.get("version", "unknown")
        self.weights_sha256: str = metadata["weights_sha256"]
        self.calibration = calibration
        self.calibration_sha256 = calibration_sha256
        # The reference population (drift monitoring, population check); None: not shipped.
        self.reference = reference
        self.reference_id = reference_id(self.weights_sha256, calibration_sha256)
        # Provenance.calibration of every result this scorer makes.
        self.calibration_info = calibration_provenance(metadata, calibration, calibration_sha256)
        self.fusion = fusion
        self.image_size: int = metadata["input_size"]
        self.device = "cpu"
        self._lock = threading.Lock()
        self._onnx: OnnxScorer | None = None
        self._onnx_cache_dir = onnx_cache_dir
        self._onnx_threads = onnx_threads
        self.requested_backend = backend
        self.backend = "torch"
        self.to(device)
        if backend == "onnx" or (backend == "auto" and self.device == "cpu" and onnx_available()):
            self._ensure_onnx()
            self.backend = "onnx"

    # --- runtime management -------------------------------------------------------------
    def to(self, device: str) -> None:
        """Move the torch parts (the registry evicts GPU -> CPU); ONNX stays on CPU."""
        with self._lock:
            if str(device).startswith("cuda"):
                # PyTorch runs cuDNN convolutions in TF32 by default: scores then differ from
                # the CPU's by up to 0.10 points; strict fp32 agrees within 0.0001 and was not
                # slower on an H200 (bench/vision_gpu.py, bench/RESULTS.md).
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            self.net.to(device)
            self.device = str(device)

    def estimated_memory_mb(self) -> float:
        n = sum(t.numel() * t.element_size() for t in self.net.state_dict().values())
        activations = 40.0  # batch-1 activations + the patch-to-bank distance matrix
        onnx = n / 2**20 if self._onnx is not None else 0.0
        return float(n / 2**20 + activations + onnx)

    def onnx_path(self) -> Path:
        # Never beside the weights: an installed package or an image layer is read-only.
        cache = self._onnx_cache_dir or default_cache_dir()
        # The graph's outputs are part of the key: a graph cached before an output was added
        # is rebuilt, not run with a missing output.
        extra = f"{self.metadata['backbone']}|{','.join(OUTPUT_NAMES)}"
        return cache_path(cache, self.weights_sha256, self.calibration_sha256, extra)

    def _ensure_onnx(self) -> None:
        if self._onnx is not None:
            return
        path = self.onnx_path()
        if not verified(path):  # missing, or no longer the graph that was written
            self.net.cpu()
            export_onnx(self.net, path, self.image_size)
            self.net.to(self.device)
        # None: ONNX Runtime's default, one thread per core (offline evaluation); the service
        # passes VISION_THREADS (see config.py).
        self._onnx = OnnxScorer(path, threads=self._onnx_threads or None)

    # --- scoring --------------------------------------------------------------------------
    def prepare(
        self, images: Sequence[npt.NDArray[Any]]
    ) -> tuple[npt.NDArray[np.float32], list[Placement], list[float]]:
        grays = [to_gray_uint8(im) for im in images]
        colour = [colourfulness(im) for im in images]
        trimmed = [trim_frame(g) for g in grays]
        prepared = [resize_gray(content, self.image_size) for content, _ in trimmed]
        return (
            to_network_input(prepared, self.metadata["backbone"]),
            [
                Placement(int(g.shape[0]), int(g.shape[1]), *box)
                for g, (_, box) in zip(grays, trimmed, strict=True)
            ],
            colour,
        )

    def run_network(
        self, x: npt.NDArray[np.float32], backend: str | None = None
    ) -> dict[str, npt.NDArray[Any]]:
        """Raw component outputs for a prepared batch (N, 1, S, S)."""
        backend = backend or self.backend
        if backend == "onnx":
            self._ensure_onnx()
            if self._onnx is None:  # pragma: no cover - _ensure_onnx sets it or raises
                raise RuntimeError("ONNX session unavailable")
            return self._onnx(x)
        with torch.inference_mode():
            outs = self.net(torch.from_numpy(x).to(self.device))
        return {k: v.float().cpu().numpy() for k, v in zip(OUTPUT_NAMES, outs, strict=True)}

    def score_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[VisionResult]:
        if len(images) == 0:
            return []
        with self._lock:
            x, shapes, colour = self.prepare(images)
            raw = self.run_network(x)
        return self.results_from_raw(raw, shapes, colour, input_statistics(x))

    def results_from_raw(
        self,
        raw: dict[str, npt.NDArray[Any]],
        shapes: list[Placement],
        colour: list[float] | None = None,
        stats: list[dict[str, float]] | None = None,
    ) -> list[VisionResult]:
        cal = self.calibration
        values = component_values(raw)
        scores, z = anomaly_scores(values, cal, self.fusion)
        fcal = cal["fusion"][self.fusion]
        threshold = float(fcal["threshold"])
        moderate = float(fcal["moderate_cut"])
        if self.fusion == "default":
            fz_all = fused_z(z, fcal["weights"])
            fz_thr = float(score_to_fz(threshold, fcal["platt"]))
            spread = 1.0
        else:  # published: distance in score units, scaled by the normals' score spread
            fz_all = scores
            fz_thr = threshold
            spread = max(float(fcal.get("normal_std", 10.0)), 1e-6)
        ood = cal["ood"]
        ood_all = ood_scores(raw["ood"], values["patch"], ood)
        lo, hi = cal["patch_map"]["lo"], cal["patch_map"]["hi"]
        acquisition = (
            acquisition_values(raw["descriptor"], self.reference) if "descriptor" in raw else None
        )
        out = []
        for i, place in enumerate(shapes):
            s = float(np.clip(scores[i], 0.0, 100.0))
            ood_score = float(ood_all[i])
            colourful = colour is not None and colour[i] > COLOUR_LIMIT
            is_xray = bool(ood_score <= ood["threshold"] and not colourful)
            seen = heatmap_from_patch_map(
                raw["patch_map"][i],
                lo,
                hi,
                (place.bottom - place.top, place.right - place.left),
                self.image_size,
            )
            heat = seen
            if seen.shape != (place.height, place.width):  # a trimmed frame stays cold
                heat = np.zeros((place.height, place.width), np.float32)
                heat[place.top : place.bottom, place.left : place.right] = seen
            # Regions keep clear of the film's own edges (markers, collimation), not the frame's.
            regions = [
                {**r, "x": r["x"] + place.left, "y": r["y"] + place.top} for r in top_regions(seen)
            ]
            comps = {k: {"value": float(values[k][i]), "z": float(z[k][i])} for k in values}
            comps["published_fused"] = {"value": float(_published(z, values, i)), "z": float("nan")}
            if self.fusion == "default":
                comps["fused"] = {"value": s, "z": float(fz_all[i])}
            inputs = {**(stats[i] if stats is not None else {}), "feature_distance": ood_score}
            if acquisition is not None:
                inputs[ACQUISITION] = float(acquisition[i])
            outside = outside_population(inputs, self.reference)
            confidence = model_confidence(float(fz_all[i]) / spread, fz_thr / spread, is_xray)
            if outside:  # its distance from the threshold is in the reference's units
                confidence = min(confidence, OUTSIDE_POPULATION_CONFIDENCE)
            out.append(
                VisionResult(
                    anomaly_score=s,
                    risk_level=risk_level(s, threshold, moderate),
                    threshold=threshold,
                    components=comps,
                    model_confidence=confidence,
                    heatmap=heat,
                    top_regions=regions,
                    ood_score=ood_score,
                    is_chest_xray=is_xray,
                    input_stats=inputs,
                    outside_population=outside,
                )
            )
        return out


def _published(z: dict[str, Any], values: dict[str, Any], i: int) -> float:
    from .fusion import published_score

    return float(
        published_score(
            {k: np.asarray(v)[i : i + 1] for k, v in z.items()}, values["vit"][i : i + 1]
        )[0]
    )


def load_scorer(
    model_dir: Path | None = None,
    *,
    calibration: Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    fusion: str = "default",
    vgg16_weights: Path | None = None,
    onnx_cache_dir: Path | None = None,
    onnx_threads: int | None = None,
) -> VisionScorer:
    """Load a checkpoint (sha256-verified); ``model_dir=None`` loads the shipped default.

    ``calibration`` (or env VISION_CALIBRATION) replaces the normal reference with a site's own.
    """
    model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    tensors, meta = load_checkpoint(model_dir)
    meta["_model_dir"] = str(model_dir)
    if vgg16_weights is None and os.environ.get("VISION_VGG16_WEIGHTS"):
        vgg16_weights = Path(os.environ["VISION_VGG16_WEIGHTS"])
    with torch.no_grad():
        net = build_net(tensors, meta, vgg16_weights)
    cal = meta["calibration"]
    reference = load_reference(model_dir)
    cal_sha = None
    if calibration is None and os.environ.get("VISION_CALIBRATION"):
        calibration = Path(os.environ["VISION_CALIBRATION"])
    if calibration is not None:
        banks, cal, cal_sha = load_calibration(Path(calibration))
        if cal.get("weights_sha256") != meta["weights_sha256"]:
            raise ValueError(
                f"calibration {calibration} was made for weights {cal.get('weights_sha256')}, "
                f"not this checkpoint ({meta['weights_sha256']}); rerun `medsight calibrate vision`"
            )
        net.set_banks(
            banks["patch_bank"], banks["knn_bank"], banks["ood_bank"], knn_k=cal.get("knn_k")
        )
        # A site's own reference (its normals) replaces the shipped one's normal part.
        reference = site_reference(reference, cal.get("reference"))
    return VisionScorer(
        net,
        meta,
        calibration=cal,
        calibration_sha256=cal_sha,
        reference=reference,
        backend=backend,
        device=device,
        fusion=fusion,
        onnx_cache_dir=onnx_cache_dir,
        onnx_threads=onnx_threads,
    )


def describe(scorer: VisionScorer) -> str:
    return json.dumps(
        {"version": scorer.version, "backend": scorer.backend, "fusion": scorer.fusion}
    )
