"""Pieces of the NER model: BIO decoding, int8 storage round trip, corpus metrics."""

from __future__ import annotations

import numpy as np
import torch

from backend.ml.nlp.ner_model import (
    bio_labels,
    bio_to_spans,
    dequantize_state,
    quantize_state,
    viterbi_bio,
)
from training.ner.evaluate import prf, span_set


def test_viterbi_never_starts_inside_an_entity() -> None:
    labels = bio_labels(["Chemical", "Disease"])
    # Greedy argmax would give O, I-Disease, I-Disease: an invalid sequence.
    lp = np.log(
        np.array(
            [
                [0.9, 0.02, 0.02, 0.03, 0.03],
                [0.3, 0.0, 0.0, 0.25, 0.45],
                [0.3, 0.0, 0.0, 0.1, 0.6],
            ],
            dtype=np.float32,
        )
        + 1e-6
    )
    tags = viterbi_bio(lp, labels)
    assert tags == ["O", "B-Disease", "I-Disease"]


def test_bio_to_spans_and_scores() -> None:
    tags = ["B-Chemical", "O", "B-Disease", "I-Disease", "I-Chemical"]
    assert bio_to_spans(tags) == [(0, 1, "Chemical"), (2, 4, "Disease"), (4, 5, "Chemical")]
    gold = span_set([["B-Disease", "I-Disease", "O"]])
    pred = span_set([["B-Disease", "O", "O"]])
    assert prf(gold, pred)["f1"] == 0.0  # boundaries must match exactly
    assert prf(gold, gold)["f1"] == 1.0


def test_int8_round_trip_is_close() -> None:
    torch.manual_seed(0)
    state = {"w": torch.randn(64, 128), "b": torch.randn(64)}
    stored = quantize_state(state)
    assert stored["w"].dtype == torch.int8 and stored["b"].dtype == torch.float16
    back = dequantize_state(stored)
    rel = (back["w"] - state["w"]).abs().max() / state["w"].abs().max()
    assert rel < 0.01
    assert set(back) == {"w", "b"}
