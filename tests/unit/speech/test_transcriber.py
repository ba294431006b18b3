"""Transcribing espeak-ng speech with the bundled Whisper tiny.en (real model, real audio)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from backend.ml.speech import (
    AudioTooLargeError,
    AudioTooLongError,
    NotAudioError,
    Transcriber,
    TranscriberLoadError,
    load_transcriber,
    resolve_model_source,
)
from backend.ml.speech.metrics import word_error_rate
from tests.unit.speech.audio_fixtures import ENCODINGS, encode, wav_bytes
from tests.unit.speech.conftest import Speech, shared_data

Say = Callable[[str], Speech]

# Patient-style sentences a triage user might dictate (written for this test).
CLINICAL_SENTENCES = [
    "I have had a dry cough and fever for three days",
    "My chest hurts when I take a deep breath",
    "I get short of breath when I climb the stairs",
    "I have been coughing up yellow phlegm since last week",
    "The pain is on the right side of my chest",
    "I feel tired and I have lost my appetite",
    "I smoked a pack of cigarettes a day for twenty years",
    "At night I wake up sweating and wheezing",
    "My temperature was thirty nine degrees this morning",
    "I have a sore throat and a runny nose",
    "Sometimes I cough up a little blood",
    "My ankles are swollen and I cannot lie flat at night",
]
MAX_MEAN_WER = 0.25


def test_clinical_sentences_mean_wer(transcriber: Transcriber, say: Say) -> None:
    rates = []
    for sentence in CLINICAL_SENTENCES:
        samples, rate = say(sentence)
        result = transcriber.transcribe(wav_bytes(samples, rate))
        rates.append(word_error_rate(sentence, result.text))
    mean = float(np.mean(rates))
    assert mean <= MAX_MEAN_WER, f"mean WER {mean:.3f} over {len(rates)} sentences: {rates}"
    # Most sentences come through nearly word-perfect, not just on average.
    assert sum(r <= 0.2 for r in rates) >= len(rates) * 2 // 3, rates


def test_symptom2disease_sentences_mean_wer(transcriber: Transcriber, say: Say) -> None:
    path = shared_data("symptoms", "Symptom2Disease.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("Pneumonia", "Bronchial Asthma")]
    # First sentence of the first rows: real patient-style wording, short enough to stay fast.
    sentences = [re.split(r"(?<=[.!?])\s", r["text"].strip())[0] for r in rows[:3]]
    rates = []
    for sentence in sentences:
        samples, rate = say(sentence)
        rates.append(
            word_error_rate(sentence, transcriber.transcribe(wav_bytes(samples, rate)).text)
        )
    assert float(np.mean(rates)) <= MAX_MEAN_WER, list(zip(sentences, rates, strict=True))


@pytest.mark.parametrize("container", sorted(ENCODINGS))
def test_every_container_transcribes(transcriber: Transcriber, say: Say, container: str) -> None:
    sentence = "My chest hurts when I take a deep breath"
    samples, rate = say(sentence)
    result = transcriber.transcribe(encode(samples, rate, container))
    assert word_error_rate(sentence, result.text) <= 0.25, result.text
    assert result.language == "en"
    assert result.duration_s == pytest.approx(samples.shape[0] / rate, abs=0.1)
    assert result.segments, "a spoken sentence yields at least one segment"
    for segment in result.segments:
        assert 0.0 <= float(segment["start"]) < float(segment["end"]) <= result.duration_s + 0.1
        assert str(segment["text"]).strip()
    assert result.text == " ".join(str(s["text"]) for s in result.segments)
    assert result.warnings == []


def test_to_dict_is_the_api_shape(transcriber: Transcriber, say: Say) -> None:
    samples, rate = say("I have a sore throat and a runny nose")
    payload = transcriber.transcribe(wav_bytes(samples, rate)).to_dict()
    assert set(payload) == {"text", "language", "duration_s", "segments", "warnings"}
    assert set(payload["segments"][0]) == {"start", "end", "text"}
    assert json.loads(json.dumps(payload)) == payload


@pytest.mark.parametrize("level_dbfs", [None, -75.0])
def test_silence_gives_empty_text_and_a_warning(
    transcriber: Transcriber, level_dbfs: float | None
) -> None:
    rate = 16_000
    if level_dbfs is None:
        samples = np.zeros(3 * rate, dtype=np.float32)  # digital silence
    else:  # a quiet room: faint noise far below speech
        rng = np.random.default_rng(1)
        samples = (rng.standard_normal(3 * rate) * 10 ** (level_dbfs / 20)).astype(np.float32)
    result = transcriber.transcribe(wav_bytes(samples, rate))
    assert result.text == ""
    assert result.segments == []
    assert result.duration_s == pytest.approx(3.0)
    assert any("no speech" in w for w in result.warnings)


def test_non_speech_sound_gives_empty_text_and_a_warning(transcriber: Transcriber) -> None:
    rate = 16_000
    t = np.arange(3 * rate) / rate
    beep = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    result = transcriber.transcribe(encode(beep, rate, "ogg"))
    assert result.text == ""
    assert any("no speech" in w for w in result.warnings)


def test_transcribe_refuses_bad_uploads(transcriber: Transcriber) -> None:
    with pytest.raises(NotAudioError):
        transcriber.transcribe(b"<html><body>not audio</body></html>")
    rate = 16_000
    hum = (0.2 * np.sin(2 * np.pi * 150 * np.arange(2 * rate) / rate)).astype(np.float32)
    clip = wav_bytes(hum, rate)
    with pytest.raises(AudioTooLargeError):
        transcriber.transcribe(clip, max_bytes=len(clip) - 1)
    with pytest.raises(AudioTooLongError):
        transcriber.transcribe(clip, max_seconds=1.0)
    with pytest.raises(AudioTooLongError):
        transcriber.transcribe(wav_bytes(np.tile(hum, 61), rate))  # 122 s
    with pytest.raises(AudioTooLargeError):
        transcriber.transcribe(clip + bytes(10 * 1024 * 1024))


def test_model_source_resolution(tmp_path: pytest.TempPathFactory) -> None:
    bundled = resolve_model_source(None)
    assert resolve_model_source("") == bundled == resolve_model_source("bundled")
    assert resolve_model_source(bundled) == bundled  # an explicit local directory
    # Size names and hub ids are passed through untouched (they need the network to load).
    assert resolve_model_source("tiny.en") == "tiny.en"
    assert (
        resolve_model_source("Systran/faster-whisper-base.en") == "Systran/faster-whisper-base.en"
    )
    with pytest.raises(TranscriberLoadError):
        resolve_model_source("/nonexistent/whisper-model")
    with pytest.raises(TranscriberLoadError):
        resolve_model_source(str(tmp_path))  # a directory without model.bin


def test_loading_a_local_model_directory_and_to_device(say: Say) -> None:
    local = load_transcriber(resolve_model_source(None), beam_size=1)
    assert local.device == "cpu"
    assert local.to("cpu") is local
    assert "tiny.en" in local.version
    samples, rate = say("The pain is on the right side of my chest")
    text = local.transcribe(wav_bytes(samples, rate)).text
    assert word_error_rate("The pain is on the right side of my chest", text) <= 0.25


def test_concurrent_calls_match_sequential_ones(transcriber: Transcriber, say: Say) -> None:
    # The HTTP layer runs transcribe() in worker threads that share one loaded model.
    clips = [wav_bytes(*say(s)) for s in CLINICAL_SENTENCES[1:3]]
    sequential = [transcriber.transcribe(c).text for c in clips]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(lambda c: transcriber.transcribe(c).text, clips))
    assert concurrent == sequential
