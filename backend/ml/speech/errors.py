"""Domain errors for audio uploads; the HTTP layer maps `status_code`/`code` to problem+json."""

from __future__ import annotations


class AudioError(Exception):
    """An audio upload that cannot be transcribed, with a message a person can act on."""

    code: str = "audio_error"
    status_code: int = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAudioError(AudioError):
    """The bytes are not one of the accepted audio containers (or hold no audio stream)."""

    code = "not_audio"
    status_code = 415


class AudioDecodeError(AudioError):
    """The container looks like audio but its content cannot be decoded (corrupt or truncated)."""

    code = "audio_unreadable"
    status_code = 422


class AudioTooLargeError(AudioError):
    """The upload is bigger than the byte limit."""

    code = "audio_too_large"
    status_code = 413


class AudioTooLongError(AudioError):
    """The decoded audio is longer than the duration limit.

    422, not 413: the request is within the byte limit and well formed; its content is refused.
    """

    code = "audio_too_long"
    status_code = 422


class TranscriberLoadError(RuntimeError):
    """The speech model could not be loaded (a server configuration problem, not a client one)."""
