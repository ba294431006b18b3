"""Reports of finished analyses: render PDF and FHIR from the typed result, keep recent PDFs."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio

from backend.contract import AnalysisResult
from backend.imaging import decode_image
from backend.storage import ObjectStorage

CACHE_SIZE = 64


def report_etag(result: AnalysisResult, kind: str, code_version: str) -> str:
    """A strong ETag: the result, the format and the code that renders it."""
    digest = hashlib.sha256(
        result.model_dump_json().encode() + kind.encode() + code_version.encode()
    ).hexdigest()[:32]
    return f'"{kind}-{digest}"'


@dataclass
class ReportService:
    """Renders reports in threads; rendered PDFs are kept per ETag (LRU, CACHE_SIZE)."""

    storage: ObjectStorage
    code_version: str

    def __post_init__(self) -> None:
        self._pdfs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def etag(self, result: AnalysisResult, kind: str) -> str:
        return report_etag(result, kind, self.code_version)

    async def pdf(
        self, result: AnalysisResult, etag: str, *, image_key: str, image_format: str
    ) -> bytes:
        with self._lock:
            cached = self._pdfs.get(etag)
            if cached is not None:
                self._pdfs.move_to_end(etag)
                return cached
        from backend.reports.pdf import render_pdf

        original_png: bytes | None = None
        if result.heatmap_bytes() is None:
            # The panels already show the original; fetch it only when they are missing.
            original = await anyio.to_thread.run_sync(self.storage.get, image_key)
            original_png = await anyio.to_thread.run_sync(_as_png, original, image_format)
        pdf = await anyio.to_thread.run_sync(lambda: render_pdf(result, original_png=original_png))
        with self._lock:
            self._pdfs[etag] = pdf
            while len(self._pdfs) > CACHE_SIZE:
                self._pdfs.popitem(last=False)
        return pdf

    async def fhir(self, result: AnalysisResult) -> bytes:
        from backend.reports.fhir import build_fhir_bundle

        bundle: dict[str, Any] = await anyio.to_thread.run_sync(lambda: build_fhir_bundle(result))
        return json.dumps(bundle).encode()


def _as_png(data: bytes, fmt: str) -> bytes | None:
    """The original as PNG for the report (DICOM and JPEG are decoded and re-encoded)."""
    if fmt == "png":
        return data
    from PIL import Image

    try:
        pixels = decode_image(data).pixels
    except Exception:  # noqa: BLE001 - the report then shows the heatmap panels only
        return None
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
