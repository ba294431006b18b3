"""Decoding uploads through PyAV: formats, limits, and what is refused."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from backend.ml.speech import (
    DEFAULT_MAX_BYTES,
    AudioDecodeError,
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    NotAudioError,
    decode_audio,
)
from tests.unit.speech.audio_fixtures import ENCODINGS, encode, wav_bytes
from tests.unit.speech.conftest import shared_data


def tone(seconds: float, rate: int = 16_000, hz: float = 330.0) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("container", sorted(ENCODINGS))
def test_each_container_decodes_to_16k_mono_with_its_duration(container: str) -> None:
    data = encode(tone(2.0, rate=22_050), 22_050, container)
    decoded = decode_audio(data)
    assert decoded.container.name == container
    assert decoded.sample_rate == 16_000
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    # Codecs pad a little (AAC priming, Opus frames); the signal itself must come through.
    assert decoded.duration_s == pytest.approx(2.0, abs=0.1)
    middle = decoded.samples[8_000:24_000]
    rms = float(np.sqrt(np.mean(middle**2)))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.15)


def test_stereo_is_mixed_down_to_mono() -> None:
    import io
    import wave

    left, right = tone(1.0, hz=300), tone(1.0, hz=500)
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(16_000)
        f.writeframes(pcm.tobytes())
    decoded = decode_audio(buffer.getvalue())
    assert decoded.samples.ndim == 1
    assert decoded.duration_s == pytest.approx(1.0, abs=0.01)


def test_file_name_is_irrelevant_only_bytes_count() -> None:
    # The API takes bytes only; an mp3 payload is decoded as mp3 whatever it was called.
    decoded = decode_audio(encode(tone(1.0), 16_000, "mp3"))
    assert decoded.container.name == "mp3"


@pytest.mark.parametrize(
    "data",
    [b"", b"just some text, not audio", b"%PDF-1.7\n" + b"\x00" * 4000, bytes(range(256)) * 40],
)
def test_non_audio_bytes_are_refused_as_415(data: bytes) -> None:
    with pytest.raises(NotAudioError) as info:
        decode_audio(data)
    assert info.value.status_code == 415
    assert info.value.code == "not_audio"


def test_an_xray_png_is_refused_as_not_audio() -> None:
    png = sorted(shared_data("cxr-dev", "fixtures").glob("*.png"))[0]
    with pytest.raises(NotAudioError):
        decode_audio(png.read_bytes())


def test_audio_magic_with_garbage_content_is_unreadable() -> None:
    rng = np.random.default_rng(0)
    fake_ogg = b"OggS" + rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    with pytest.raises(AudioDecodeError) as info:
        decode_audio(fake_ogg)
    assert isinstance(info.value, AudioError)
    assert info.value.status_code == 422


def test_truncated_header_is_unreadable() -> None:
    data = wav_bytes(tone(1.0), 16_000)[:30]  # RIFF/WAVE magic, then the header breaks off
    with pytest.raises(AudioDecodeError):
        decode_audio(data)


def test_over_ten_megabytes_is_refused_as_413_before_decoding() -> None:
    data = wav_bytes(tone(1.0), 16_000)
    too_big = data + b"\x00" * (DEFAULT_MAX_BYTES + 1 - len(data))
    assert len(too_big) == DEFAULT_MAX_BYTES + 1
    with pytest.raises(AudioTooLargeError) as info:
        decode_audio(too_big)
    assert info.value.status_code == 413
    assert "10.0 MiB" in info.value.message
    # The limit is the caller's: the same clip passes with the default and fails a tighter one.
    decode_audio(data)
    with pytest.raises(AudioTooLargeError):
        decode_audio(data, max_bytes=len(data) - 1)


def test_over_120_seconds_is_refused() -> None:
    data = wav_bytes(tone(121.0), 16_000)
    assert len(data) < DEFAULT_MAX_BYTES
    with pytest.raises(AudioTooLongError) as info:
        decode_audio(data)
    assert info.value.status_code == 422
    assert info.value.code == "audio_too_long"


def test_exactly_120_seconds_is_accepted() -> None:
    decoded = decode_audio(wav_bytes(tone(120.0), 16_000))
    assert decoded.duration_s == pytest.approx(120.0)


def test_long_compressed_audio_is_refused_even_when_small() -> None:
    # 130 s of Opus is a few hundred KB: only the decoded duration can catch it.
    data = encode(tone(130.0), 16_000, "ogg", codec_rate=16_000)
    assert len(data) < 2 * 1024 * 1024
    with pytest.raises(AudioTooLongError):
        decode_audio(data)


def test_duration_limit_is_the_callers() -> None:
    data = encode(tone(5.0), 16_000, "webm")
    assert decode_audio(data, max_seconds=10).duration_s == pytest.approx(5.0, abs=0.1)
    with pytest.raises(AudioTooLongError):
        decode_audio(data, max_seconds=2)
