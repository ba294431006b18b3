"""Speech-to-text for spoken symptoms: decode an upload safely, transcribe it with Whisper.

`load_transcriber(settings.whisper_model)` once (registry), then `transcribe(bytes)` in a thread.
Errors a client caused are `AudioError`s carrying `status_code` and `code`:
NotAudioError 415 not_audio, AudioTooLargeError 413 audio_too_large, AudioTooLongError 422
audio_too_long, AudioDecodeError 422 audio_unreadable. Silence is not an error: empty text and a
warning. TranscriberLoadError is a server problem (bad WHISPER_MODEL), never a 4xx.
"""

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
