"""The int8 ONNX Runtime path serves the same model: NER spans and ranking agree with PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.ml.nlp.pipeline import DEFAULT_MODEL_DIR, PrefetchingEmbedder, load_minilm_embedder
from backend.ml.onnx_text import onnx_runtime_available, resolve_runtime

pytestmark = pytest.mark.skipif(not onnx_runtime_available(), reason="onnxruntime not installed")

NOTE = (
    "58-year-old smoker with a productive cough, fever and shortness of breath for five days. "
    "He denies hemoptysis. No history of asthma. He takes lisinopril for hypertension and was "
    "started on amoxicillin. Crackles over the right lower lobe. Possible pneumonia."
)


def test_runtime_choice() -> None:
    assert resolve_runtime("auto") == "onnx"
    assert resolve_runtime("auto", device="cuda") == "torch"
    assert resolve_runtime("torch") == "torch"
    with pytest.raises(ValueError):
        resolve_runtime("tensorrt")


def test_ner_spans_match_torch(tmp_path: Path) -> None:
    from backend.ml.nlp.ner_model import NERTagger

    torch_tagger = NERTagger(DEFAULT_MODEL_DIR, runtime="torch")
    onnx_tagger = NERTagger(DEFAULT_MODEL_DIR, runtime="onnx", cache_dir=tmp_path)
    assert onnx_tagger.runtime == "onnx" and list(tmp_path.glob("ner-*.int8.onnx"))
    a = {(s.start, s.end, s.label, s.head) for s in torch_tagger.tag_text(NOTE)}
    b = {(s.start, s.end, s.label, s.head) for s in onnx_tagger.tag_text(NOTE)}
    assert len(a) >= 6
    # int8 weights may move a boundary now and then; the spans must agree almost everywhere.
    assert len(a & b) / len(a | b) >= 0.8, a ^ b
    # The graph is cached: a second load reuses the file.
    before = sorted(p.name for p in tmp_path.iterdir())
    NERTagger(DEFAULT_MODEL_DIR, runtime="onnx", cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_sentence_encoder_matches_torch_and_prefetch_changes_nothing(tmp_path: Path) -> None:
    from backend.ml.embeddings import OnnxSentenceEncoder

    st = load_minilm_embedder()
    onnx = OnnxSentenceEncoder(st.sentence_transformer, tmp_path)
    texts = ["dry cough and fever", "wheezing at night after exercise", NOTE, "no chest pain"]
    ref = st.encode(texts)
    got = onnx.encode(texts)
    assert got.shape == ref.shape == (4, 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert float((ref * got).sum(axis=1).min()) > 0.97
    assert onnx.encode([]).shape == (0, 384)

    pre = PrefetchingEmbedder(onnx)
    plain = pre.encode(texts)
    with pre.provided(texts[:2], plain[:2]):
        mixed = pre.encode(texts)  # two handed over, two computed
    assert np.allclose(mixed, plain, atol=1e-6)


def test_profile_phrase_vectors_are_reused_only_while_they_verify(tmp_path: Path) -> None:
    from backend.ml.embeddings import OnnxSentenceEncoder
    from backend.ml.nlp import ranking

    st = load_minilm_embedder()
    onnx = OnnxSentenceEncoder(st.sentence_transformer, tmp_path)
    phrases = [f"{NOTE} ({n})" for n in range(3)]  # a phrase set no other test encodes
    first = ranking.encode_phrases(PrefetchingEmbedder(onnx), phrases)
    assert np.allclose(first, onnx.encode(phrases), atol=1e-6)
    (saved,) = tmp_path.glob("condition-phrases-*.npy")
    assert saved.with_name(saved.name + ".sha256").is_file()

    # A new process (the in-process copy forgotten) loads them from disk ...
    ranking._PHRASE_VECTORS.clear()
    assert np.array_equal(ranking.encode_phrases(onnx, phrases), first)
    # ... unless the file was altered: then they are encoded again, not trusted.
    ranking._PHRASE_VECTORS.clear()
    planted = np.zeros_like(first)
    np.save(saved, planted, allow_pickle=False)
    again = ranking.encode_phrases(onnx, phrases)
    assert np.allclose(again, first, atol=1e-6)
    # Another phrase set is never answered from this one's vectors.
    other = ranking.encode_phrases(onnx, phrases[:2])
    assert other.shape == (2, 384)


def test_the_onnx_encoder_and_the_rag_embedder_share_no_tokenizer_state(tmp_path: Path) -> None:
    """The race that failed a corpus build at start-up, performed.

    The NLP stage's ONNX encoder, the RAG embedder and its chunk counter wrap one
    sentence-transformers model. A fast tokenizer rewrites its padding and truncation settings
    on every call, so one shared between threads let a truncating call land inside the RAG
    embedder's padded batch: "Unable to create tensor". Each now tokenizes with its own copy;
    the three run concurrently here (the shared object failed 178 of these calls in 20 s).
    """
    import threading
    import time

    from backend.ml.embeddings import MiniLMEmbedder, OnnxSentenceEncoder
    from backend.ml.rag.corpus import token_counter

    st = load_minilm_embedder().sentence_transformer
    rag = MiniLMEmbedder(st, bf16=False)
    onnx = OnnxSentenceEncoder(st, tmp_path)
    count = token_counter(rag)
    assert onnx.tokenizer is not st.tokenizer and rag.tokenizer is not st.tokenizer
    batch = [" ".join(["cough"] * (n % 9 + 1)) for n in range(64)]  # padded to its longest
    errors: list[str] = []
    stop = time.monotonic() + 4.0

    def run(call: Any) -> None:
        while time.monotonic() < stop:
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    calls = [
        lambda: rag.encode(batch, batch_size=4),
        lambda: onnx.tokenizer(["fever " * 300], truncation=True, max_length=256),
        lambda: count(["dry cough and fever", "wheeze " * 50]),
    ]
    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    same = float((rag.encode(["dry cough"]) * onnx.encode(["dry cough"])).sum())
    assert same > 0.97  # the copies tokenize as the original did
