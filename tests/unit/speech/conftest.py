"""Fixtures for the speech tests: one loaded transcriber, espeak-ng speech, shared data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from backend.ml.speech import Transcriber, load_transcriber
from tests.unit.speech.audio_fixtures import ESPEAK, read_wav, speak

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))

Speech = tuple[npt.NDArray[np.float32], int]


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    """The default model (bundled Whisper tiny.en, CPU, int8), loaded once."""
    return load_transcriber()


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Speech]:
    """Synthesize a sentence with espeak-ng (skips when the binary is missing)."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    cache: dict[str, Speech] = {}

    def _say(text: str) -> Speech:
        if text not in cache:
            cache[text] = read_wav(speak(text, folder / f"{len(cache)}.wav"))
        return cache[text]

    return _say
