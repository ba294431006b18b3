"""Reading the IOB corpora in the layout of ``../shared/data/ner/<corpus>/iob/{split}.tsv``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Corpus folder name -> (tagging head, entity types). The head name is what the model calls it.
KNOWN_CORPORA: dict[str, tuple[str, list[str]]] = {
    "bc5cdr": ("bc5cdr", ["Chemical", "Disease"]),
    "ncbi-disease": ("ncbi", ["Disease"]),
    "anatem": ("anatem", ["Anatomy"]),
}


@dataclass
class Corpus:
    """Sentences of one split: words and BIO tags."""

    name: str
    words: list[list[str]]
    tags: list[list[str]]

    def types(self) -> list[str]:
        """Entity types seen in the tags, sorted."""
        return sorted({t[2:] for sent in self.tags for t in sent if t != "O"})


def iob_path(corpus_dir: Path, split: str) -> Path:
    """Path of a split file; accepts a corpus folder with or without the ``iob/`` level."""
    for cand in (corpus_dir / "iob" / f"{split}.tsv", corpus_dir / f"{split}.tsv"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no {split}.tsv under {corpus_dir} (or {corpus_dir / 'iob'})")


def read_iob(path: Path, name: str = "") -> Corpus:
    """Read a CoNLL-style ``token<TAB>tag`` file, blank line between sentences."""
    words: list[list[str]] = []
    tags: list[list[str]] = []
    cur_w: list[str] = []
    cur_t: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.rstrip("\r")
        if not line.strip():
            if cur_w:
                words.append(cur_w)
                tags.append(cur_t)
                cur_w, cur_t = [], []
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            parts = line.split()
        cur_w.append(parts[0])
        cur_t.append(parts[-1].strip())
    if cur_w:
        words.append(cur_w)
        tags.append(cur_t)
    return Corpus(name or path.parent.parent.name, words, tags)


def file_digest(paths: list[Path]) -> str:
    """sha256 over the named files' bytes, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def head_for(corpus_dir: Path, corpus: Corpus) -> tuple[str, list[str]]:
    """Tagging head and entity types for a corpus folder (falls back to the tags it holds)."""
    name = corpus_dir.name if corpus_dir.name != "iob" else corpus_dir.parent.name
    if name in KNOWN_CORPORA:
        return KNOWN_CORPORA[name]
    return name, corpus.types()
