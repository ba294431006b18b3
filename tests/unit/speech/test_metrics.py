"""Word error rate and its normaliser."""

from __future__ import annotations

import pytest

from backend.ml.speech.metrics import (
    edit_distance,
    normalize_words,
    number_to_words,
    word_error_rate,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (20, "twenty"),
        (38, "thirty eight"),
        (105, "one hundred five"),
        (2024, "two thousand twenty four"),
        (1_000_000, "one million"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_normalise_case_punctuation_and_numbers() -> None:
    assert normalize_words("I've had a fever of 38.5, for 3 days!") == (
        "i've had a fever of thirty eight point five for three days".split()
    )
    assert normalize_words("Twenty-one  years") == ["twenty", "one", "years"]
    assert normalize_words("...") == []


def test_edit_distance_counts_each_kind_of_error() -> None:
    assert edit_distance("a b c".split(), "a b c".split()) == 0
    assert edit_distance("a b c".split(), "a x c".split()) == 1  # substitution
    assert edit_distance("a b c".split(), "a c".split()) == 1  # deletion
    assert edit_distance("a b c".split(), "a b b c".split()) == 1  # insertion
    assert edit_distance([], "a b".split()) == 2


def test_word_error_rate() -> None:
    assert (
        word_error_rate("I have had a fever for three days", "I have had a fever for 3 days.") == 0
    )
    assert word_error_rate("my chest hurts", "my chest") == pytest.approx(1 / 3)
    assert word_error_rate("cough", "cough cough cough") == 2.0  # insertions can exceed 1
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hello") == 1.0
