"""The dose post-filter (whole text and streamed) and PII scrubbing."""

from __future__ import annotations

import pytest

from backend.ml.rag.safety import (
    DOSE_REDACTION,
    StreamingDoseFilter,
    contains_dose_instruction,
    redact_doses,
    scrub_pii,
)
from tests.unit.rag.dose_cases import DOSE_REPLIES, FORBIDDEN, split_awkwardly

SAFE_SENTENCES = [
    "Your image anomaly score is 71.4 out of 100.",
    "The decision threshold is 55.0, so the score is above it.",
    "Pneumonia is an infection that inflames the air sacs in one or both lungs.",
    "It highlights 1 region(s); the strongest is around x=312, y=410 (about 96 by 80 pixels).",
    "Seek urgent care for severe breathlessness, chest pain or coughing up blood.",
    "COPD is a long-term lung disease that makes it hard to breathe.",
    "In this study of 120 patients, 35% had a pleural effusion.",
]


@pytest.mark.parametrize("reply", DOSE_REPLIES)
def test_whole_reply_is_redacted(reply: str) -> None:
    clean, removed = redact_doses(reply)
    assert removed >= 1
    assert not FORBIDDEN.search(clean), clean


@pytest.mark.parametrize("reply", DOSE_REPLIES)
def test_streamed_reply_split_across_tokens_is_redacted(reply: str) -> None:
    f = StreamingDoseFilter()
    text = "Here is some general information. " + reply + " Please ask your pharmacist."
    out = "".join(f.feed(piece) for piece in split_awkwardly(text)) + f.flush()
    assert not FORBIDDEN.search(out), out
    assert DOSE_REDACTION in out
    assert out.startswith("Here is some general information.")
    assert out.rstrip().endswith("Please ask your pharmacist.")


@pytest.mark.parametrize("sentence", SAFE_SENTENCES)
def test_ordinary_medical_text_passes_unchanged(sentence: str) -> None:
    assert not contains_dose_instruction(sentence)
    f = StreamingDoseFilter()
    assert "".join(f.feed(p) for p in split_awkwardly(sentence, 3)) + f.flush() == sentence


def test_run_on_text_without_punctuation_is_released_and_still_checked() -> None:
    f = StreamingDoseFilter(max_buffer=100, holdback=40)
    safe = "word " * 60
    out = "".join(f.feed(p) for p in split_awkwardly(safe, 5))
    assert out  # released before the end of the stream
    out += f.flush()
    assert out == safe
    g = StreamingDoseFilter(max_buffer=100, holdback=40)
    risky = "word " * 30 + "then take 500 mg of it " + "word " * 30
    out = "".join(g.feed(p) for p in split_awkwardly(risky, 5)) + g.flush()
    assert "500" not in out and DOSE_REDACTION in out


def test_pii_is_scrubbed() -> None:
    text = (
        "Hi, my name is John Smith, DOB 12/03/1961, MRN 00123456. Call me on +44 20 7946 0958 "
        "or john.smith@example.com. Dr. Alice Brown saw me on March 3, 2024. My wife Anna has "
        "asthma. SSN 123-45-6789. Patient ID: AB-99812."
    )
    result = scrub_pii(text)
    for secret in (
        "John",
        "Smith",
        "12/03/1961",
        "00123456",
        "7946",
        "john.smith@example.com",
        "Alice",
        "Brown",
        "March 3",
        "Anna",
        "123-45-6789",
        "AB-99812",
    ):
        assert secret not in result.text, secret
    assert {"NAME", "DATE", "ID", "PHONE", "EMAIL"} <= set(result.counts)
    assert "asthma" in result.text


def test_pii_scrubbing_keeps_clinical_numbers_and_plain_words() -> None:
    text = "I'm worried: my score was 71.4 with threshold 55 and I am Asthmatic since 2019."
    assert scrub_pii(text).text == text


def test_scores_and_measurements_are_not_mistaken_for_dates_or_phones() -> None:
    text = (
        "Image anomaly score: 71.4/100, decision threshold 55.0; region 96x80 px at x=312, y=410."
    )
    assert scrub_pii(text).text == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("my name is john smith", "john smith"),
        ("hi, my name is john smith and i have a cough", "john smith"),
        ("call me dave please, what is my score?", "dave"),
        ("me llamo maría lópez y tengo tos", "maría lópez"),
        ("je m'appelle jean dupont", "jean dupont"),
        ("my wife's name is anna", "anna"),
    ],
)
def test_lower_case_names_after_an_introduction_are_scrubbed(text: str, secret: str) -> None:
    result = scrub_pii(text)
    for part in secret.split():
        assert part not in result.text, result.text
    assert result.counts.get("NAME") == 1
    assert "[NAME]" in result.text


def test_introductions_without_a_name_are_left_alone() -> None:
    for text in ("my name is not important here", "i am worried about my score"):
        assert scrub_pii(text).text == text
