"""Real audio for the speech tests: espeak-ng speech, encoded into each container with PyAV."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

ESPEAK = shutil.which("espeak-ng")
ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 140

# container name -> (PyAV muxer, codec, encoder sample rate)
ENCODINGS: dict[str, tuple[str, str, int]] = {
    "wav": ("wav", "pcm_s16le", 16_000),
    "mp3": ("mp3", "libmp3lame", 22_050),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "m4a": ("ipod", "aac", 44_100),
}


def speak(text: str, path: Path) -> Path:
    """Synthesize `text` with espeak-ng into a WAV file (22.05 kHz mono PCM)."""
    if ESPEAK is None:
        raise RuntimeError("espeak-ng is not installed")
    subprocess.run(
        [ESPEAK, "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WPM), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def read_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Mono 16-bit WAV -> float32 samples in [-1, 1] and the sample rate."""
    with wave.open(str(path), "rb") as f:
        rate = f.getframerate()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0), rate


def encode(
    samples: npt.NDArray[np.float32], rate: int, container: str, codec_rate: int | None = None
) -> bytes:
    """Encode mono float32 samples into `container` (see ENCODINGS) in memory."""
    muxer, codec, default_rate = ENCODINGS[container]
    codec_rate = codec_rate or default_rate
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=codec_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = None
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def wav_bytes(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    """A plain PCM WAV file in memory (the standard library's writer, not PyAV)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
