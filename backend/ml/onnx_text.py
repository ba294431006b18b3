"""ONNX Runtime for the BERT-style text encoders (the NER tagger and the ranking embedder).

On a CPU the NLP stage is two MiniLM passes; PyTorch eager runs them at ~30 ms each here. The
same graph exported to ONNX with int8 weights (dynamic quantisation, one scale per output
channel, MatMul only) runs 2-3x faster: the CPU's VNNI int8 dot products do the work, and the
embedding, LayerNorm and softmax stay fp32. Measured on 59 real symptom texts: cosine of the
mean-pooled int8 vectors to fp32 is 0.9935 on average (0.987 at worst); per-tensor quantisation
(the library default) gave 0.953 and is not used.

The ONNX files are derived artefacts: built on first use from the weights that are loaded
(never committed), cached under a directory keyed by the weights' digest and the library
versions, written atomically so that concurrent first loads cannot see a half-written file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.ml.onnx_cache import record_digest, temp_cache_dir, verified

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx")


def onnx_runtime_available() -> bool:
    """True when onnxruntime (and its quantiser) can be imported."""
    try:
        import onnxruntime  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: str = "cpu") -> str:
    """'auto' -> 'onnx' on CPU when onnxruntime is installed, else 'torch'."""
    if runtime not in RUNTIMES:
        raise ValueError(f"text runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "auto":
        return "onnx" if device == "cpu" and onnx_runtime_available() else "torch"
    return runtime


def default_cache_dir() -> Path:
    """``$MODEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/medsight/onnx`` (``~/.cache/medsight/onnx``)."""
    explicit = os.environ.get("MODEL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medsight" / "onnx"


def state_digest(module: Any) -> str:
    """sha256 over a module's parameters and buffers (names, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def writable_dir(preferred: Path) -> Path:
    """``preferred`` when it can be created and written, else a private per-user temp folder."""
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        probe = preferred / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return preferred
    except OSError:
        return temp_cache_dir()


def last_hidden_state_module(bert: Any) -> Any:
    """Export wrapper: a Hugging Face encoder -> its last hidden state as a plain tensor."""
    from torch import nn

    class LastHidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHidden()


def cached_int8_encoder(
    module: Any,
    cache_dir: Path,
    prefix: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    example: tuple[Any, ...],
) -> Path:
    """Path of the int8 ONNX graph of ``module``; exported and quantised on the first call.

    ``module(*example)`` must return a tensor or a tuple of tensors named ``output_names``;
    every input and output gets dynamic batch and sequence axes.
    """
    import onnxruntime
    import torch

    digest = state_digest(module)
    key = hashlib.sha256(
        f"{digest}|{prefix}|{torch.__version__}|{onnxruntime.__version__}|int8-pc".encode()
    ).hexdigest()[:24]
    name = f"{prefix}-{key}.int8.onnx"
    if verified(cache_dir / name):  # built earlier, e.g. at image build into a read-only layer
        return cache_dir / name
    directory = writable_dir(cache_dir)
    path = directory / name
    if verified(path):
        return path
    logger.info("exporting %s to ONNX int8 at %s (first use)", prefix, path)
    fd, fp32 = tempfile.mkstemp(suffix=".onnx", dir=directory)
    os.close(fd)
    fd, int8 = tempfile.mkstemp(suffix=".onnx", dir=directory)
    os.close(fd)
    axes = {n: {0: "batch", 1: "tokens"} for n in (*input_names, *output_names)}
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on python ints in the attention mask
            torch.onnx.export(
                module.eval(),
                example,
                fp32,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        _quantize(Path(fp32), Path(int8))
        os.chmod(int8, 0o644)  # mkstemp creates 0600
        os.replace(int8, path)
        record_digest(path)
    finally:
        for tmp in (fp32, int8):
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger("root").disabled = True  # the quantiser's "consider pre-processing" note
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.getLogger("root").disabled = False


class OnnxEncoder:
    """One ONNX Runtime session; ``run`` is thread-safe and releases the GIL while it computes.

    ``threads`` is the intra-op pool of one call. The NLP stage runs its two encoders side by
    side and the service runs several jobs at once, so one thread per call (no spinning, which
    only burns a core that another call could use) is the default.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Outputs by name for one padded batch."""
        outs = self.session.run(
            None,
            {
                "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
            },
        )
        return dict(zip(self.output_names, outs, strict=True))
