"""Decode an uploaded audio file (bytes) to 16 kHz mono float32 through PyAV, within limits."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.resampler import AudioResampler

from backend.ml.speech.errors import (
    AudioDecodeError,
    AudioTooLargeError,
    AudioTooLongError,
    NotAudioError,
)
from backend.ml.speech.sniff import ACCEPTED_CONTAINERS, AudioContainer, sniff_container

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper expects
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_SECONDS = 120.0
# Encoders add a little priming/padding (MP3 ~50 ms, AAC ~23 ms): a clip recorded as exactly
# the limit must not be refused for it.
DURATION_TOLERANCE_S = 0.25

_ACCEPTED_NAMES = ", ".join(c.name for c in ACCEPTED_CONTAINERS)


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at `sample_rate`, the container they came from, and decode warnings."""

    samples: npt.NDArray[np.float32]
    sample_rate: int
    container: AudioContainer
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def check_size(data: bytes, max_bytes: int) -> None:
    """Raise AudioTooLargeError when `data` is over `max_bytes`."""
    if len(data) > max_bytes:
        raise AudioTooLargeError(
            f"the audio file is {len(data) / 2**20:.1f} MiB; "
            f"the limit is {max_bytes / 2**20:.1f} MiB"
        )


def decode_audio(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> DecodedAudio:
    """Check size, sniff the container from the bytes, and decode the first audio stream.

    Decoding stops as soon as the audio passes `max_seconds`, so a small, highly compressed (or
    lying) file cannot make the server decode hours of audio. Raises an AudioError subclass.
    """
    check_size(data, max_bytes)
    if not data:
        raise NotAudioError("the audio file is empty")
    container = sniff_container(data)
    if container is None:
        raise NotAudioError(f"the file is not a supported audio format ({_ACCEPTED_NAMES})")

    limit = int((max_seconds + DURATION_TOLERANCE_S) * sample_rate)
    chunks: list[npt.NDArray[np.float32]] = []
    total = 0
    bad_packets = 0
    try:
        with av.open(
            io.BytesIO(data), mode="r", format=container.demuxer, metadata_errors="ignore"
        ) as source:
            if not source.streams.audio:
                raise NotAudioError(f"the {container.name} file holds no audio stream")
            stream = source.streams.audio[0]
            resampler = AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for packet in source.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    # One damaged packet should not lose the rest of a dictation.
                    bad_packets += 1
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                        chunks.append(chunk)
                        total += chunk.shape[0]
                if total > limit:
                    raise AudioTooLongError(
                        f"the audio is longer than {max_seconds:g} s; send a shorter recording"
                    )
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += chunk.shape[0]
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        logger.info("audio decode failed", extra={"container": container.name, "error": str(exc)})
        raise AudioDecodeError(
            f"the {container.name} file could not be decoded; it may be corrupt or truncated"
        ) from exc

    if total > limit:
        raise AudioTooLongError(
            f"the audio is longer than {max_seconds:g} s; send a shorter recording"
        )
    if total == 0:
        raise AudioDecodeError(f"no audio could be decoded from the {container.name} file")
    warnings = []
    if bad_packets:
        warnings.append(f"{bad_packets} damaged audio packet(s) were skipped")
    samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    return DecodedAudio(
        samples=samples, sample_rate=sample_rate, container=container, warnings=warnings
    )


def peak_level_dbfs(samples: npt.NDArray[np.float32], sample_rate: int = SAMPLE_RATE) -> float:
    """Loudest 30 ms window's RMS level in dBFS (DC removed); -inf for digital silence."""
    window = max(1, int(0.03 * sample_rate))
    n = samples.shape[0] // window
    if n == 0:
        frames = samples.reshape(1, -1).astype(np.float64)
    else:
        frames = samples[: n * window].reshape(n, window).astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    peak_rms = float(np.sqrt(np.mean(frames**2, axis=1)).max())
    return float(20.0 * np.log10(peak_rms)) if peak_rms > 0 else float("-inf")
