"""Voice input through the HTTP endpoint: real speech in, text out; bad audio is a 4xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from backend.ml.speech.metrics import word_error_rate
from tests.unit.speech.audio_fixtures import ESPEAK, encode, read_wav, speak

SENTENCES = [
    "I have had a dry cough and fever for three days",
    "My chest hurts when I breathe in deeply",
    "I am short of breath when I climb the stairs",
    "I have been coughing up green mucus since Monday",
    "My child has a high temperature and is wheezing at night",
]


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
async def test_spoken_symptoms_are_transcribed(client: httpx.AsyncClient, tmp_path: Path) -> None:
    errors = []
    for i, sentence in enumerate(SENTENCES):
        samples, rate = read_wav(speak(sentence, tmp_path / f"s{i}.wav"))
        audio = encode(samples, rate, "ogg" if i % 2 else "wav")
        response = await client.post(
            "/api/v1/analyze/transcribe", files={"audio": (f"clip{i}.bin", audio)}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["duration_s"] > 1 and body["segments"] and body["language"]
        errors.append(word_error_rate(sentence, body["text"]))
    assert sum(errors) / len(errors) <= 0.25, errors


async def test_non_audio_is_415_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/analyze/transcribe", files={"audio": ("x.wav", b"this is not audio at all" * 10)}
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_audio_over_10mb_is_413(client: httpx.AsyncClient) -> None:
    big = b"RIFF" + b"\0" * (10 * 1024 * 1024 + 10)
    response = await client.post("/api/v1/analyze/transcribe", files={"audio": ("x.wav", big)})
    assert response.status_code == 413
