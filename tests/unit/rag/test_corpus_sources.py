"""What the corpus is built from: the packaged default, gzip files, a site's own JSON Lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from backend.config import default_corpus_dir
from backend.ml.rag.corpus import load_documents


def test_the_packaged_default_corpus_loads_with_its_licence_notes() -> None:
    folder = default_corpus_dir()
    docs = load_documents(folder)
    pubmed = [d for d in docs if d.pmid]
    medquad = [d for d in docs if d.source.startswith("MedQuAD/")]
    assert len(pubmed) == 129 and len(medquad) == 444
    assert all(d.url for d in medquad)  # CC BY 4.0: every MedQuAD passage links its page
    notes = (folder / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in notes and "MIT" in notes


def test_a_sites_own_documents_from_one_file(tmp_path: Path) -> None:
    path = tmp_path / "site.jsonl.gz"
    rows = [
        {"title": "Local pneumonia pathway", "text": "Adults with CURB-65 of 2 or more ..."},
        {"id": "copd-1", "title": "COPD", "text": "Inhaler review.", "url": "https://intranet/x"},
        {"title": "empty", "text": "   "},
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    docs = load_documents(path)
    assert [d.title for d in docs] == ["Local pneumonia pathway", "COPD"]
    assert docs[1].doc_id == "site-copd-1" and docs[1].url == "https://intranet/x"
    assert docs[0].source == "site" and docs[0].text.startswith("Local pneumonia pathway. ")
    # Same content, same id: a rerun of `corpus build --from` adds nothing new.
    assert load_documents(path)[0].doc_id == docs[0].doc_id


def test_a_file_without_any_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text('{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no document with text"):
        load_documents(path)
