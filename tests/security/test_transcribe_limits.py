"""/analyze/transcribe (Whisper, the most CPU-heavy route) is rate limited (issue 16, item 6)."""

from __future__ import annotations

import io
import wave

from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, fresh_peer


def _silence(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


async def test_transcription_is_rate_limited_and_its_422_is_titled(app_with) -> None:
    too_long = _silence(125.0)  # 4 MB, within the byte limit, over the 120 s limit
    async with (
        app_with(rate_limit_transcribe="3/minute") as app,
        client_for(app, fresh_peer()) as client,
    ):
        for _ in range(3):
            r = await client.post(
                "/api/v1/analyze/transcribe", files={"audio": ("long.wav", too_long)}
            )
            body = assert_problem(r, 422)
            assert body["code"] == "audio_too_long"
            assert body["title"] == "Unprocessable Content" or body["title"].startswith("Unproc")
            assert "Internal" not in body["title"]
        r = await client.post("/api/v1/analyze/transcribe", files={"audio": ("long.wav", too_long)})
        assert assert_problem(r, 429)["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) > 0
        # Another client address has its own allowance.
        async with client_for(app, fresh_peer()) as other:
            r = await other.post("/api/v1/analyze/transcribe", files={"audio": ("x.wav", b"")})
            assert r.status_code != 429
