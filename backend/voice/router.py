"""Voice input: transcribe spoken symptoms (Whisper tiny.en, offline)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, Field

from backend.accounts.dependencies import OwnerDep
from backend.accounts.ratelimit import rate_limit
from backend.analysis.dependencies import RuntimeDep
from backend.errors import AppError
from backend.ml.catalog import WHISPER
from backend.web.problems import problem_responses
from backend.web.uploads import read_limited

router = APIRouter(prefix="/api/v1/analyze", tags=["voice"])

MAX_AUDIO_BYTES = 10 * 1024 * 1024
MAX_AUDIO_SECONDS = 120.0


class Segment(BaseModel):
    start: float = Field(description="Seconds from the start")
    end: float = Field(description="Seconds from the start")
    text: str = Field(description="What was said in this span")


class TranscriptionOut(BaseModel):
    text: str = Field(description="The transcript, after clinical vocabulary correction")
    language: str = Field(description="Detected language code", examples=["en"])
    duration_s: float = Field(description="Length of the audio")
    segments: list[Segment] = Field(description="Timed pieces of the transcript")
    warnings: list[str] = Field(description="What limits this transcript; read before using it")


@router.post(
    "/transcribe",
    response_model=TranscriptionOut,
    summary="Transcribe spoken symptoms (wav, mp3, ogg/opus, webm, m4a; ≤ 10 MB, ≤ 120 s)",
    responses=problem_responses(413, 415, 422, 429, 503),
    dependencies=[rate_limit("transcribe")],
)
async def transcribe(
    audio: Annotated[UploadFile, File(description="Audio recording")],
    runtime: RuntimeDep,
    owner: OwnerDep,
) -> Any:
    data = await read_limited(audio, MAX_AUDIO_BYTES, what="recording", code="audio_too_large")
    transcriber = await runtime.registry.get(WHISPER)
    from backend.ml.speech import AudioError

    try:
        result = await anyio.to_thread.run_sync(
            lambda: transcriber.transcribe(
                data, max_bytes=MAX_AUDIO_BYTES, max_seconds=MAX_AUDIO_SECONDS
            ),
            limiter=runtime.inference_limiter,
        )
    except AudioError as exc:
        raise AppError(str(exc), status_code=exc.status_code, code=exc.code) from None
    return result.to_dict()
