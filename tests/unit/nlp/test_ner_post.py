"""Document-level NER post-processing: abbreviation propagation and label consistency."""

from __future__ import annotations

from backend.ml.nlp.ner_model import TaggedSpan
from backend.ml.nlp.ner_post import (
    is_abbreviation,
    matches_long_form,
    postprocess_spans,
    postprocess_windows,
    postprocess_words,
)


def test_is_abbreviation() -> None:
    assert is_abbreviation("ARF")
    assert is_abbreviation("5-FU") is False  # must start with a letter
    assert is_abbreviation("IL-2")
    assert not is_abbreviation("and")
    assert not is_abbreviation("A")
    assert not is_abbreviation("VERYLONGTOKEN")


def test_abbreviation_is_propagated_in_the_document() -> None:
    words = [
        ["acute", "renal", "failure", "(", "ARF", ")", "occurred"],
        ["ARF", "was", "reversible", "."],
    ]
    tags = [
        ["B-Disease", "I-Disease", "I-Disease", "O", "O", "O", "O"],
        ["O", "O", "O", "O"],
    ]
    out = postprocess_words(words, tags, consistency=False)
    assert out[0][4] == "B-Disease"
    assert out[1][0] == "B-Disease"
    assert tags[1][0] == "O"  # input untouched


def test_abbreviation_relabels_a_single_token_of_another_type() -> None:
    words = [["cis-diamminedichloroplatinum", "(", "CDDP", ")"], ["CDDP", "dose"]]
    tags = [["B-Chemical", "O", "B-Disease", "O"], ["B-Disease", "O"]]
    out = postprocess_words(words, tags, consistency=False)
    assert out == [["B-Chemical", "O", "B-Chemical", "O"], ["B-Chemical", "O"]]


def test_consistency_tags_untagged_repeats_but_respects_ratio() -> None:
    words = [["lithium", "toxicity"], ["serum", "lithium"], ["lithium", "salts"]]
    tags = [["B-Chemical", "O"], ["O", "O"], ["O", "O"]]
    # tagged 1 of 3 occurrences: below 0.5, nothing added
    assert postprocess_words(words, tags, abbreviations=False) == tags
    out = postprocess_words(words, tags, abbreviations=False, min_ratio=0.3)
    assert out == [["B-Chemical", "O"], ["O", "B-Chemical"], ["B-Chemical", "O"]]


def test_consistency_multiword_and_no_clash_with_existing_spans() -> None:
    words = [["heart", "failure"], ["congestive", "heart", "failure"], ["heart", "failure"]]
    tags = [["B-Disease", "I-Disease"], ["B-Disease", "I-Disease", "I-Disease"], ["O", "O"]]
    out = postprocess_words(words, tags, abbreviations=False, min_ratio=0.5)
    assert out[1] == ["B-Disease", "I-Disease", "I-Disease"]
    assert out[2] == ["B-Disease", "I-Disease"]


def test_windows_use_neighbouring_sentences_only() -> None:
    words = [["aspirin"], ["x"], ["y"], ["aspirin"]]
    tags = [["B-Chemical"], ["O"], ["O"], ["O"]]
    assert postprocess_windows(words, tags, window=1, min_ratio=0.5)[3] == ["O"]
    assert postprocess_windows(words, tags, window=3, min_ratio=0.5)[3] == ["B-Chemical"]
    # with the default ratio (0.67) one tagged and one untagged occurrence is not enough
    assert postprocess_windows(words, tags, window=3)[3] == ["O"]


def test_spans_view_matches_word_view() -> None:
    text = "Acute renal failure (ARF) after cisplatin. ARF and Cisplatin toxicity."
    spans = [
        TaggedSpan(0, 19, "Disease", "bc5cdr"),
        TaggedSpan(32, 41, "Chemical", "bc5cdr"),
        TaggedSpan(0, 5, "Anatomy", "anatem"),
    ]
    out = postprocess_spans(text, spans, min_ratio=0.5)
    got = {(s.start, s.end, s.label, s.head) for s in out}
    assert (21, 24, "Disease", "bc5cdr") in got  # the defining "(ARF)"
    assert (43, 46, "Disease", "bc5cdr") in got  # later bare "ARF"
    assert (51, 60, "Chemical", "bc5cdr") in got  # "Cisplatin", case-insensitive
    assert (0, 5, "Anatomy", "anatem") in got  # other heads kept as they were
    assert all(isinstance(s, TaggedSpan) for s in out)
    assert [s.start for s in out] == sorted(s.start for s in out)


def test_abbreviation_needs_matching_long_form() -> None:
    assert matches_long_form("ARF", "acute renal failure")
    assert matches_long_form("CDDP", "cis-diamminedichloroplatinum")
    assert not matches_long_form("CDDP", "cisplatin")
    assert not matches_long_form("NPY", "peptide")
    words = [["glutamic", "acid", "(", "NPY", ")"], ["NPY"]]
    tags = [["B-Chemical", "I-Chemical", "O", "O", "O"], ["O"]]
    assert postprocess_words(words, tags, consistency=False) == tags


def test_spans_empty() -> None:
    assert postprocess_spans("nothing here", []) == []
