"""Zero-shot condition ranking: profile similarity (MiniLM or lexical) plus entity evidence.

score(c) = sim(c) + LAMBDA * evidence(c)

sim(c), with embeddings: the patient text is cut into clauses; each clause is matched to its most
similar phrase of c's profile (cosine of MiniLM vectors), and the mean over clauses (how much of
what the patient says c explains) is averaged with the best match of the whole text's mean vector.
Without embeddings the same is done with stemmed word overlap (binary cosine).

evidence(c) in [-1, 1]: the IDF-weighted share of the patient's affirmed symptoms that are key
symptoms of c, minus the share of its key symptoms the patient explicitly denies ("no fever" counts
against every condition whose profile lists fever), plus +0.3 when the condition itself is named
(+0.225 when hedged, "possible pneumonia") and -0.3 when it is negated. Uncertain, historical
and family symptom mentions are ignored. The IDF is the Robertson-Sparck Jones (BM25) one over
the profiles' key symptoms, log((N - df + 0.5) / (df + 0.5)) floored at ``IDF_FLOOR``: generic
symptoms that half the profiles list (fever, tiredness, cough) count for almost nothing, so a
condition cannot win on them alone; specific ones (wheezing, coloured or mucoid sputum) decide.

Confidence: softmax(score / T) over the candidate conditions. T is fixed per method (see
``TEMPERATURE``) by leave-one-out on the profiles' own lay descriptions (each description removed
from its profile and used as a query), so it is not fitted to any evaluation set. Read the numbers
as relative plausibility among the listed conditions, not as probabilities of disease.

Supervised head (optional, embeddings only): a multinomial logistic regression on the text's
MiniLM vector (the normalised mean of its clause vectors), trained by
``python -m training.ner.ranking_head`` on authored text only -- every profile's symptom
phrases, descriptions and first-person lay ``vignettes`` (written for MedSight; they are matched
like descriptions too) -- never on Symptom2Disease rows. With a head,
score(c) = sim(c) + LAMBDA * evidence(c) + w * log p_head(c); w and the softmax temperature
come from cross-validation over those vignettes and are stored with the weights. The head is
used only when it was trained for exactly the ranker's profile ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.ml.embeddings import EMBEDDING_DIM
from backend.ml.nlp.conditions import ConditionProfile
from backend.ml.nlp.types import Entity, TextEmbedder
from backend.ml.nlp.vocab import DATA_DIR, SymptomMatcher
from backend.ml.onnx_cache import record_digest, verified

logger = logging.getLogger(__name__)

LAMBDA = {"embedding": 0.3, "rules": 0.35}
# Re-derived with `python -m training.ner.calibrate` after the vignettes were added (101
# leave-one-out queries): embedding T=0.05 (top-1 0.84, NLL 0.57), rules T=0.06 (top-1 0.83,
# NLL 0.56); both unchanged. With the supervised head the head's own temperature is used.
TEMPERATURE = {"embedding": 0.05, "rules": 0.06}
IDF_FLOOR = 0.05  # weight of a symptom listed by half the profiles or more
NAMED = 0.3  # evidence for a condition named in the text (x0.75 when hedged)
_CLAUSE_SPLIT = re.compile(r"[.;!?\n]+|,\s*(?:and|but|with|also)\s+|\s+(?:but|and also)\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be been being but by can do does for from had has have he her his i in "
    "is it its my me of on or our she so that the their them then there these they this to very "
    "was we were what when which while who will with you your am also just really lot lots some "
    "feel feeling felt get getting got been having like been".split()
)
MAX_CLAUSES = 12
HEAD_FILE = DATA_DIR / "condition_head.npz"


def split_clauses(text: str) -> list[str]:
    """Short statements of the text; the text itself when it has no split points."""
    parts = [p.strip() for p in _CLAUSE_SPLIT.split(text) if p and p.strip()]
    parts = [p for p in parts if len(_WORD.findall(p.lower())) >= 2]
    if not parts:
        return [text.strip()] if text.strip() else []
    return parts[:MAX_CLAUSES]


def _stem(word: str) -> str:
    for suf in ("ing", "ness", "ed", "es", "s", "y"):
        if len(word) > len(suf) + 3 and word.endswith(suf):
            return word[: -len(suf)]
    return word


def content_words(text: str) -> frozenset[str]:
    """Stemmed content words (stop words dropped)."""
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP)


def mean_vector(clause_vecs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """L2-normalised mean of clause vectors: the text vector of the ranker and of its head."""
    whole: npt.NDArray[np.float32] = clause_vecs.mean(axis=0).astype(np.float32)
    whole /= max(float(np.linalg.norm(whole)), 1e-8)
    return whole


@dataclass(frozen=True)
class ConditionHead:
    """Multinomial logistic regression over condition ids on a text vector.

    ``weights`` (dim, classes) and ``bias`` (classes,); ``weight`` scales log p in the ranking
    score and ``temperature`` replaces the zero-shot one (both chosen by cross-validation on
    the authored training text, see ``training/ner/ranking_head.py``).
    """

    ids: tuple[str, ...]
    weights: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    weight: float = 0.0
    temperature: float = 0.05

    def log_proba(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """log p(class | text vector), one row per input row (or a vector for one input)."""
        z = np.asarray(x, dtype=np.float64) @ self.weights.astype(np.float64) + self.bias
        z = z - z.max(axis=-1, keepdims=True)
        out: npt.NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return out

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the head and a JSON string of its provenance to an ``.npz`` file."""
        np.savez_compressed(
            path,
            ids=np.array(self.ids),
            weights=self.weights,
            bias=self.bias,
            weight=np.float64(self.weight),
            temperature=np.float64(self.temperature),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: Path = HEAD_FILE) -> ConditionHead | None:
        """The head stored at ``path``; None when there is none."""
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return cls(
                tuple(str(i) for i in z["ids"]),
                np.asarray(z["weights"], dtype=np.float32),
                np.asarray(z["bias"], dtype=np.float32),
                float(z["weight"]),
                float(z["temperature"]),
            )


@dataclass
class Ranked:
    """One ranked condition with its score parts."""

    profile: ConditionProfile
    score: float
    similarity: float
    evidence: float
    confidence: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Differential entry."""
        return {
            "condition": self.profile.name,
            "id": self.profile.id,
            "group": self.profile.group,
            "confidence": round(self.confidence, 4),
            "score": round(self.score, 4),
            "evidence": list(self.notes),
        }


_PHRASE_VECTORS: dict[tuple[str, str], npt.NDArray[np.float32]] = {}
_PHRASE_LOCK = threading.Lock()


def encode_phrases(embedder: TextEmbedder, phrases: list[str]) -> npt.NDArray[np.float32]:
    """The profile phrases' vectors, encoded once per encoder and phrase set.

    An encoder that names its weights (``identity``: the ONNX encoder's content-addressed graph)
    is trusted to give the same vectors again, so they are kept for the process and, when the
    encoder has a ``cache_dir`` (the folder of its graph), on disk beside the graph with a
    digest checked before each load: about 1,500 phrases took 6-12 s of every start on
    2 cores. Without an identity the phrases are encoded every time.
    """
    identity = getattr(embedder, "identity", None)
    if not identity:
        return np.asarray(embedder.encode(phrases), dtype=np.float32)
    key = (str(identity), hashlib.sha256("\n".join(phrases).encode()).hexdigest())
    with _PHRASE_LOCK:
        cached = _PHRASE_VECTORS.get(key)
    if cached is not None:
        return cached
    cache_dir = getattr(embedder, "cache_dir", None)
    path = None
    if cache_dir is not None:
        name = hashlib.sha256("|".join(key).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"condition-phrases-{name}.npy"
        if verified(path):
            with contextlib.suppress(OSError, ValueError):
                loaded = np.load(path, allow_pickle=False)
                if loaded.shape == (len(phrases), EMBEDDING_DIM):
                    cached = loaded.astype(np.float32, copy=False)
    if cached is None:
        cached = np.asarray(embedder.encode(phrases), dtype=np.float32)
        if path is not None:
            with contextlib.suppress(OSError):
                _save_verified(path, cached)
    cached.setflags(write=False)
    with _PHRASE_LOCK:
        _PHRASE_VECTORS[key] = cached
    return cached


def _save_verified(path: Path, array: npt.NDArray[np.float32]) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        record_digest(path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ConditionRanker:
    """Ranks condition profiles for a text; embedder None selects the lexical fallback."""

    def __init__(
        self,
        profiles: list[ConditionProfile],
        symptoms: SymptomMatcher,
        embedder: TextEmbedder | None = None,
        hub_correction: bool = True,
        whole_text: bool = False,
        clause_weight: float = 0.5,
        evidence_weight: float | None = None,
        head: ConditionHead | None = None,
    ) -> None:
        self.profiles = profiles
        self.whole_text = whole_text
        self.clause_weight = clause_weight
        self.symptoms = symptoms
        self.embedder = embedder
        self.method = "embedding" if embedder is not None else "rules"
        self.lam = LAMBDA[self.method] if evidence_weight is None else evidence_weight
        n = len(profiles)
        df: dict[str, int] = {}
        for p in profiles:
            for k in symptoms.expand(set(p.key_symptoms)):
                df[k] = df.get(k, 0) + 1
        # Robertson-Sparck Jones (BM25) IDF: a symptom listed by half the profiles (fever,
        # tiredness, cough) weighs almost nothing; floored so it still counts a little.
        self.idf = {k: max(IDF_FLOOR, math.log((n - d + 0.5) / (d + 0.5))) for k, d in df.items()}
        self.keys = [symptoms.expand(set(p.key_symptoms)) for p in profiles]
        self._phrase_owner: npt.NDArray[np.int64] = np.array(
            [i for i, p in enumerate(profiles) for _ in p.phrases], dtype=np.int64
        )
        self._phrases = [ph for p in profiles for ph in p.phrases]
        self._phrase_vecs: npt.NDArray[np.float32] | None = None
        self._phrase_words = [content_words(ph) for ph in self._phrases]
        if embedder is not None:
            self._phrase_vecs = encode_phrases(embedder, self._phrases)
        self._offset = np.zeros(n, dtype=np.float32)
        if hub_correction:
            self._offset = self._hub_offsets()
        self.head: ConditionHead | None = None
        self._head_index: npt.NDArray[np.int64] | None = None
        if head is not None and embedder is not None:
            ids = [p.id for p in profiles]
            if sorted(head.ids) == sorted(ids):
                self.head = head
                pos = {cid: i for i, cid in enumerate(head.ids)}
                self._head_index = np.array([pos[cid] for cid in ids], dtype=np.int64)
            else:
                logger.warning("condition head ignored: it was trained for other condition ids")

    def _similarity(self, clauses: list[str], text: str) -> npt.NDArray[np.float32]:
        if self.method == "embedding":
            return self._similarity_embedding(clauses, text)[0]
        return self._similarity_rules(clauses)

    def _hub_offsets(self) -> npt.NDArray[np.float32]:
        """How similar each profile is to the other conditions' descriptions, centred.

        A profile full of generic symptoms (fever, tiredness) scores high on any text; the
        offset subtracts its mean similarity to the other profiles' descriptions (a reference
        set that contains no evaluation data), so it has to win on the specific content.
        """
        n = len(self.profiles)
        sums = np.zeros(n, dtype=np.float64)
        counts = np.zeros(n, dtype=np.float64)
        for owner, p in enumerate(self.profiles):
            for desc in (*p.descriptions, *p.vignettes):
                sim = self._similarity(split_clauses(desc), desc)
                mask = np.arange(n) != owner
                sums[mask] += sim[mask]
                counts[mask] += 1
        mu = sums / np.maximum(counts, 1)
        out: npt.NDArray[np.float32] = (mu - mu.mean()).astype(np.float32)
        return out

    # -- similarity -------------------------------------------------------------------------
    def _similarity_embedding(
        self, clauses: list[str], text: str
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per-profile similarity and the text vector (mean of the clause vectors)."""
        if self.embedder is None or self._phrase_vecs is None:
            raise RuntimeError("embedding similarity needs an embedder")
        if self.whole_text:
            both = np.asarray(self.embedder.encode([*clauses, text]), dtype=np.float32)
            q, whole = both[:-1], both[-1]
        else:
            q = np.asarray(self.embedder.encode(clauses), dtype=np.float32)
            whole = mean_vector(q)
        sims = q @ self._phrase_vecs.T  # (clauses, phrases)
        whole_sims = self._phrase_vecs @ whole
        n = len(self.profiles)
        per_clause = np.full((len(clauses), n), -1.0, dtype=np.float32)
        best_whole = np.full(n, -1.0, dtype=np.float32)
        np.maximum.at(per_clause.T, self._phrase_owner, sims.T)
        np.maximum.at(best_whole, self._phrase_owner, whole_sims)
        w = self.clause_weight
        out: npt.NDArray[np.float32] = w * per_clause.mean(axis=0) + (1.0 - w) * best_whole
        return out, mean_vector(q)

    def _similarity_rules(self, clauses: list[str]) -> npt.NDArray[np.float32]:
        n = len(self.profiles)
        per_clause = np.zeros((len(clauses), n), dtype=np.float32)
        for ci, clause in enumerate(clauses):
            q = content_words(clause)
            if not q:
                continue
            for pi, words in enumerate(self._phrase_words):
                if not words:
                    continue
                inter = len(q & words)
                if inter:
                    owner = self._phrase_owner[pi]
                    sim = inter / math.sqrt(len(q) * len(words))
                    per_clause[ci, owner] = max(per_clause[ci, owner], sim)
        out: npt.NDArray[np.float32] = per_clause.mean(axis=0)
        return out

    # -- evidence -----------------------------------------------------------------------------
    def _evidence(self, entities: dict[str, list[Entity]]) -> tuple[list[float], list[list[str]]]:
        def current(e: Entity) -> bool:
            return not (e.uncertain or e.historical or e.family)

        affirmed = {
            e.concept
            for e in entities.get("symptoms", [])
            if e.concept and current(e) and not e.negated
        }
        negated = {
            e.concept
            for e in entities.get("symptoms", [])
            if e.concept and current(e) and e.negated
        }
        # Denying "cough" does not deny a listed "dry cough", but a denied broad entry cancels
        # the narrower affirmed ones only if they are the same concept.
        affirmed = self.symptoms.expand(affirmed)
        negated = self.symptoms.expand(negated) - affirmed
        total = sum(self.idf.get(k, 1.0) for k in affirmed) or 1.0
        # A named condition counts whether affirmed or hedged ("possible pneumonia" is a
        # clinician's differential); negated counts against. History/family are ignored.
        diseases = [e for e in entities.get("diseases", []) if not (e.historical or e.family)]
        scores: list[float] = []
        notes: list[list[str]] = []
        for p, keys in zip(self.profiles, self.keys, strict=True):
            key_total = sum(self.idf.get(k, 1.0) for k in keys) or 1.0
            pos = sorted(affirmed & keys)
            neg = sorted(negated & keys)
            s = sum(self.idf.get(k, 1.0) for k in pos) / total
            s -= sum(self.idf.get(k, 1.0) for k in neg) / key_total
            note = [f"+{k}" for k in pos] + [f"-{k} (denied)" for k in neg]
            for d in diseases:
                if p.matches_label(d.text) or d.text.lower() in p.name.lower():
                    s += -NAMED if d.negated else (NAMED * 0.75 if d.uncertain else NAMED)
                    note.append(f"{'-' if d.negated else '+'}{d.text} (named)")
            scores.append(max(-1.5, min(1.5, s)))
            notes.append(note)
        return scores, notes

    # -- ranking ------------------------------------------------------------------------------
    def rank(
        self,
        text: str,
        entities: dict[str, list[Entity]],
        candidates: set[str] | None = None,
    ) -> list[Ranked]:
        """All candidate conditions, best first, with softmax confidences."""
        clauses = split_clauses(text)
        if not clauses:
            return []
        t = TEMPERATURE[self.method]
        head = np.zeros(len(self.profiles), dtype=np.float64)
        if self.method == "embedding":
            raw, vec = self._similarity_embedding(clauses, text)
            if self.head is not None and self._head_index is not None:
                head = self.head.weight * self.head.log_proba(vec)[self._head_index]
                t = self.head.temperature
        else:
            raw = self._similarity_rules(clauses)
        sim = raw - self._offset
        ev, notes = self._evidence(entities)
        lam = self.lam
        ranked = [
            Ranked(
                p,
                float(sim[i] + lam * ev[i] + head[i]),
                float(sim[i]),
                float(ev[i]),
                notes=notes[i],
            )
            for i, p in enumerate(self.profiles)
            if candidates is None or p.id in candidates
        ]
        if not ranked:
            return []
        scores = np.array([r.score for r in ranked], dtype=np.float64) / t
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        for r, pr in zip(ranked, probs, strict=True):
            r.confidence = float(pr)
        ranked.sort(key=lambda r: r.score, reverse=True)
        return ranked
