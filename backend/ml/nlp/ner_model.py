"""MiniLM token classifier with one head per corpus, int8 storage and span decoding."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

from backend.ml.nlp.ner_post import bio_to_spans  # torch-free home of the BIO decoder

__all__ = ["NERTagger", "MultiHeadTagger", "TaggedSpan", "bio_labels", "bio_to_spans"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "ner.safetensors"
META_FILE = "metadata.json"
CONFIG_FILE = "config.json"
_QUANT_SUFFIX = ".__scale"
# Long texts are cut at sentence ends into pieces the encoder can take in one pass.
_MAX_CHARS = 1200
_SENT_END = re.compile(r"(?<=[.!?;])\s+")


def bio_labels(types: list[str]) -> list[str]:
    """BIO tag set for the given entity types, "O" first."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


class MultiHeadTagger(nn.Module):
    """A BERT encoder shared by several corpora, each with its own linear tagging head."""

    def __init__(self, config: BertConfig, heads: dict[str, list[str]]) -> None:
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(0.1)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden_size, len(labels)) for name, labels in heads.items()}
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, heads: list[str]
    ) -> dict[str, torch.Tensor]:
        """Logits per requested head, shape (batch, seq, n_labels)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.dropout(hidden)
        return {h: self.heads[h](hidden) for h in heads}


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store 2-D weight matrices as int8 with one fp32 scale per row; everything else fp16."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        tensor = value.detach().float().cpu()
        if tensor.dim() == 2 and tensor.numel() >= 4096:
            scale = tensor.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            out[key] = torch.round(tensor / scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[key + _QUANT_SUFFIX] = scale.contiguous()
        else:
            out[key] = tensor.to(torch.float16).contiguous()
    return out


def dequantize_state(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`quantize_state`, back to fp32."""
    out: dict[str, torch.Tensor] = {}
    for key, value in stored.items():
        if key.endswith(_QUANT_SUFFIX):
            continue
        scale = stored.get(key + _QUANT_SUFFIX)
        if scale is not None:
            out[key] = value.float() * scale[:, None].float()
        else:
            out[key] = value.float()
    return out


def save_tagger(
    model: MultiHeadTagger,
    tokenizer: BertTokenizerFast,
    heads: dict[str, list[str]],
    out_dir: Path,
    metadata: dict[str, Any],
) -> None:
    """Write int8 weights, encoder config, tokenizer and metadata to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if "position_ids" not in k}
    save_file(quantize_state(state), str(out_dir / WEIGHTS_FILE))
    model.encoder.config.to_json_file(str(out_dir / CONFIG_FILE))
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    meta = dict(metadata)
    meta["heads"] = heads
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class TaggedSpan:
    """One predicted entity: character span, type and the head that found it."""

    start: int
    end: int
    label: str
    head: str


def viterbi_bio(log_probs: npt.NDArray[np.float32], labels: list[str]) -> list[str]:
    """Best BIO path that never enters I-X except from B-X or I-X."""
    n, k = log_probs.shape
    if n == 0:
        return []
    allowed = np.zeros((k, k), dtype=np.float32)
    for j, lab in enumerate(labels):
        if lab.startswith("I-"):
            typ = lab[2:]
            for i, prev in enumerate(labels):
                if prev[2:] != typ or prev == "O":
                    allowed[i, j] = -1e4
    start_pen = np.array([-1e4 if lab.startswith("I-") else 0.0 for lab in labels], np.float32)
    score = log_probs[0] + start_pen
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + allowed
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return [labels[i] for i in reversed(path)]


class _AllHeads(nn.Module):
    """Export view of a tagger: (input_ids, attention_mask) -> every head's logits, in order."""

    def __init__(self, model: MultiHeadTagger, heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = heads

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[Any, ...]:
        out = self.model(input_ids, attention_mask, self.names)
        return tuple(out[h] for h in self.names)


class NERTagger:
    """Loaded tagger: predicts entity spans on raw text or on pre-split words.

    ``runtime`` "onnx" runs the encoder on ONNX Runtime with int8 weights (built once from the
    loaded weights into ``cache_dir``, default :func:`backend.ml.onnx_text.default_cache_dir`);
    "torch" runs PyTorch; "auto" picks ONNX on CPU when it is installed. Evaluation goes
    through the same runtime as the service, so reported scores are those of the served model.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        runtime: str = "auto",
        cache_dir: Path | None = None,
        threads: int = 1,
    ) -> None:
        from backend.ml.onnx_text import default_cache_dir, resolve_runtime

        self.model_dir = model_dir
        self.metadata: dict[str, Any] = json.loads((model_dir / META_FILE).read_text())
        self.heads: dict[str, list[str]] = self.metadata["heads"]
        config = BertConfig.from_json_file(str(model_dir / CONFIG_FILE))
        self.model = MultiHeadTagger(config, self.heads)
        state = dequantize_state(load_file(str(model_dir / WEIGHTS_FILE)))
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [m for m in missing if "position_ids" not in m]
        if missing or unexpected:
            raise ValueError(f"NER weights do not match: missing={missing} unexpected={unexpected}")
        self.model.eval()
        self.tokenizer = BertTokenizerFast.from_pretrained(str(model_dir / "tokenizer"))
        self.runtime = resolve_runtime(runtime)
        self._onnx: Any = None
        if self.runtime == "onnx":
            from backend.ml.onnx_text import OnnxEncoder, cached_int8_encoder

            names = list(self.heads)
            example = self.tokenizer(["no fever"], return_tensors="pt")
            path = cached_int8_encoder(
                _AllHeads(self.model, names),
                cache_dir or default_cache_dir(),
                f"ner-{self.metadata.get('version', model_dir.name)}",
                ("input_ids", "attention_mask"),
                names,
                (example["input_ids"], example["attention_mask"]),
            )
            self._onnx = OnnxEncoder(path, threads=threads)

    def _logits(self, enc: Any, heads: list[str]) -> dict[str, npt.NDArray[np.float32]]:
        if self._onnx is not None:
            # One unpadded run per row: dynamic int8 quantisation scales activations over the
            # whole input, so batching would let one sentence's tags depend on its neighbours.
            ids, mask = np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"])
            result: dict[str, npt.NDArray[np.float32]] = {}
            for b in range(ids.shape[0]):
                n = int(mask[b].sum())
                out = self._onnx.run(ids[b : b + 1, :n], mask[b : b + 1, :n])
                for h in heads:
                    if h not in result:
                        width = out[h].shape[-1]
                        result[h] = np.zeros((ids.shape[0], ids.shape[1], width), np.float32)
                    result[h][b, :n] = out[h][0]
            return result
        with torch.inference_mode():
            logits = self.model(
                torch.as_tensor(enc["input_ids"]), torch.as_tensor(enc["attention_mask"]), heads
            )
        return {h: logits[h].float().numpy() for h in heads}

    def _word_log_probs(
        self, enc: Any, n_items: int, heads: list[str]
    ) -> list[dict[str, npt.NDArray[np.float32]]]:
        logits = self._logits(enc, heads)
        out: list[dict[str, npt.NDArray[np.float32]]] = []
        for b in range(n_items):
            word_ids = enc.word_ids(b)
            firsts: list[int] = []
            seen: set[int] = set()
            for pos, wid in enumerate(word_ids):
                if wid is not None and wid not in seen:
                    seen.add(wid)
                    firsts.append(pos)
            out.append({h: _log_softmax(logits[h][b, firsts]) for h in heads})
        return out

    def tag_words(
        self, sentences: list[list[str]], head: str, batch_size: int = 32
    ) -> list[list[str]]:
        """BIO tags for pre-split sentences (used for corpus evaluation)."""
        labels = self.heads[head]
        result: list[list[str]] = []
        for i in range(0, len(sentences), batch_size):
            batch = sentences[i : i + batch_size]
            enc = self.tokenizer(
                batch,
                is_split_into_words=True,
                truncation=True,
                max_length=512,
                padding=True,
                return_tensors="np",
            )
            for sent, lp in zip(batch, self._word_log_probs(enc, len(batch), [head]), strict=True):
                tags = viterbi_bio(lp[head], labels)
                # Words cut off by truncation (very rare) are tagged O.
                result.append(tags + ["O"] * (len(sent) - len(tags)))
        return result

    def tag_text(self, text: str, heads: list[str] | None = None) -> list[TaggedSpan]:
        """Entity spans (character offsets into ``text``) from every requested head."""
        use = heads or list(self.heads)
        spans: list[TaggedSpan] = []
        for piece_start, piece in _pieces(text):
            enc = self.tokenizer(
                [piece],
                truncation=True,
                max_length=512,
                return_offsets_mapping=True,
                return_tensors="np",
            )
            offsets = enc.pop("offset_mapping")[0].tolist()
            word_ids = enc.word_ids(0)
            word_bounds: dict[int, list[int]] = {}
            for pos, wid in enumerate(word_ids):
                if wid is None:
                    continue
                s, e = offsets[pos]
                if wid in word_bounds:
                    word_bounds[wid][1] = e
                else:
                    word_bounds[wid] = [s, e]
            order = sorted(word_bounds)
            lps = self._word_log_probs(enc, 1, use)[0]
            for head in use:
                tags = viterbi_bio(lps[head], self.heads[head])
                for a, b, typ in bio_to_spans(tags):
                    s = word_bounds[order[a]][0] + piece_start
                    e = word_bounds[order[b - 1]][1] + piece_start
                    spans.append(TaggedSpan(s, e, typ, head))
        return spans


def _log_softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = x.astype(np.float32) - x.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return out


def _pieces(text: str) -> list[tuple[int, str]]:
    """Split text at sentence ends into (offset, piece) runs of at most ~_MAX_CHARS."""
    if len(text) <= _MAX_CHARS:
        return [(0, text)]
    pieces: list[tuple[int, str]] = []
    start = 0
    cur_start = 0
    for m in _SENT_END.finditer(text):
        if m.start() - cur_start > _MAX_CHARS and start > cur_start:
            pieces.append((cur_start, text[cur_start:start]))
            cur_start = start
        start = m.end()
    pieces.append((cur_start, text[cur_start:]))
    # A single sentence longer than the limit is cut hard; the tokenizer truncates the rest.
    return [(o, p) for o, p in pieces if p.strip()]
