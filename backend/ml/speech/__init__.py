"""Speech-to-text for spoken symptoms: decode an upload safely, transcribe it with Whisper."""

from backend.ml.speech.decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SECONDS,
    DecodedAudio,
    decode_audio,
)
from backend.ml.speech.errors import (
    AudioDecodeError,
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    NotAudioError,
    TranscriberLoadError,
)
from backend.ml.speech.sniff import ACCEPTED_CONTAINERS, AudioContainer, sniff_container
from backend.ml.speech.transcriber import (
    BUNDLED_MODEL,
    Transcriber,
    Transcription,
    load_transcriber,
    resolve_model_source,
)

__all__ = [
    "ACCEPTED_CONTAINERS",
    "BUNDLED_MODEL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SECONDS",
    "AudioContainer",
    "AudioDecodeError",
    "AudioError",
    "AudioTooLargeError",
    "AudioTooLongError",
    "DecodedAudio",
    "NotAudioError",
    "Transcriber",
    "TranscriberLoadError",
    "Transcription",
    "decode_audio",
    "load_transcriber",
    "resolve_model_source",
    "sniff_container",
]
