"""The clinical PDF: its text (pdftotext) and its first page as pixels (pdftoppm)."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from backend.contract import OverallStatus, load_result
from backend.contract.heatmap import to_data_uri
from backend.reports.content import DISCLAIMER
from backend.reports.pdf import render_pdf
from tests.unit.reports.conftest import Sample
from tests.unit.reports.sample import NLP_SHA, VISION_SHA, partial, vary

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="poppler-utils (pdftotext, pdftoppm) not installed",
)


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


def _page1(pdf: bytes, tmp_path: Path) -> npt.NDArray[np.uint8]:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "p")],
        check=True,
    )
    image = cv2.imread(str(next(tmp_path.glob("p*.png"))), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def _jet_blue(page: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels of the colormap's dark-blue background, which nothing else on the page uses."""
    b, g, r = (page[..., i].astype(np.int16) for i in range(3))
    return (b > 100) & (g < 60) & (r < 60)


def _words(text: str) -> str:
    return " ".join(text.split())


@needs_poppler
def test_pdf_text_has_the_key_fields(complete: Sample, tmp_path: Path) -> None:
    result, original = complete.result, complete.original
    pdf = render_pdf(result, original_png=original)
    assert pdf.startswith(b"%PDF-")
    text = _words(_text(pdf, tmp_path))
    expected = [
        "MRN-0042317",  # patient reference
        result.session_id,
        "2026-11-28 03:14:08 UTC",  # date
        "78.4",
        "HIGH risk",
        "Threshold 55.0",
        "Reconstruction error (VAE)",
        "2.41",  # a z-score from the components table
        "k-NN feature distance",
        "tuberculosis",
        "negated (absent)",
        "Pneumonia",
        "Bronchitis",  # differential
        "moderate",  # fusion alignment
        "strongest signal in the right lower zone",  # narrative
        "Prioritise review of this study by a radiologist.",
        _words(DISCLAIMER),
        "medsight-vae-vit-fused 1.0.0",
        "medspacy-rules+minilm 1.3.1",
        VISION_SHA,
        NLP_SHA,
        str(result.provenance.image_sha256),
        "0.1.0+3e5a1f2",
        "PNG 256\u00d7256 px",
        "Out-of-distribution score 0.12",
        "Page 1 of 2",
        "Page 2 of 2",
    ]
    missing = [field for field in expected if field not in text]
    assert missing == []
    assert text.count("negated (absent)") == 2  # tuberculosis and fever, not the present ones


@needs_poppler
def test_pdf_page_one_shows_the_three_panels(complete: Sample, tmp_path: Path) -> None:
    page = _page1(render_pdf(complete.result), tmp_path)
    blue = _jet_blue(page)
    assert blue.mean() > 0.03, "no heatmap panel on page 1"
    # The heatmap's blue background is one connected region; the overlay's blue is scattered.
    _, _, stats, _ = cv2.connectedComponentsWithStats(blue.astype(np.uint8))
    x0, y0, width, height = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), :4]
    x1, y1 = x0 + width, y0 + height
    assert width > page.shape[1] / 5, "heatmap panel too small"
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    original = page[y0:y1, max(0, x0 - width) : x0 - 2]
    heatmap = gray[y0:y1, x0:x1]
    overlay = page[y0:y1, x1 + 2 : x1 + width]
    for name, panel in (("original", original), ("heatmap", heatmap), ("overlay", overlay)):
        assert panel.size > 0 and float(panel.std()) > 20.0, f"{name} panel is blank"
    # The original is grey (R = G = B); the overlay carries the colormap's tint.
    assert float(np.abs(original[..., 0].astype(int) - original[..., 2]).mean()) < 3.0
    assert float(np.abs(overlay[..., 0].astype(int) - overlay[..., 2]).mean()) > 10.0


@needs_poppler
def test_partial_pdf_marks_missing_parts(complete: Sample, tmp_path: Path) -> None:
    result = partial(complete.result, "vision", "fusion")
    pdf = render_pdf(result, original_png=complete.original)
    text = _words(_text(pdf, tmp_path))
    assert "PARTIAL analysis." in text
    assert "Image analysis: not available: vision stage failed" in text
    assert "Image-text fusion: not available: fusion stage failed" in text
    assert "Heatmap not available: vision stage failed" in text
    assert "tuberculosis" in text  # the text findings that did complete are still there
    page = _page1(pdf, tmp_path)
    assert _jet_blue(page).mean() < 0.001  # no heatmap drawn when there is none


@needs_poppler
def test_failed_pdf_still_renders_with_every_part_missing(complete: Sample, tmp_path: Path) -> None:
    result = partial(complete.result, "vision", "nlp", "fusion")
    result = vary(result, overall_status=OverallStatus.FAILED.value, report_text="")
    text = _words(_text(render_pdf(result), tmp_path))
    assert "FAILED analysis." in text
    assert text.count("not available") >= 4
    assert "No risk level could be computed" in text
    assert _words(DISCLAIMER) in text


@needs_poppler
def test_user_text_is_printed_literally(complete: Sample, tmp_path: Path) -> None:
    assert complete.result.vision is not None
    components = dict(complete.result.vision.components)
    components["published_fused"] = {"value": 61.2, "z": float("nan")}
    result = vary(
        complete.result,
        patient_ref="<b>A&B</b>",
        report_text="Opacity <i>not</i> seen & 2 < 3.",
        vision={"components": components},
    )
    text = _words(_text(render_pdf(result), tmp_path))
    assert "Fused score (published formula) 61.2 \u2013" in text
    assert "<b>A&B</b>" in text
    assert "Opacity <i>not</i> seen & 2 < 3." in text


def test_same_result_gives_the_same_bytes(complete: Sample) -> None:
    assert render_pdf(complete.result) == render_pdf(load_result(complete.stored))


def test_pdf_is_at_most_two_pages(complete: Sample) -> None:
    pdf = render_pdf(complete.result)
    pages = re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf)
    assert 1 <= len(pages) <= 2


@needs_poppler
def test_complete_pdf_lists_warnings(complete: Sample, tmp_path: Path) -> None:
    result = vary(complete.result, warnings=["input: low contrast image"])
    text = _words(_text(render_pdf(result), tmp_path))
    assert "Warnings recorded during the analysis." in text
    assert "input: low contrast image" in text
    assert "not available" not in text


def test_concurrent_renders_match_sequential_ones(complete: Sample) -> None:
    """The API renders in worker threads; ReportLab must not mix their documents."""
    result = complete.result
    inputs = [result, partial(result, "vision"), partial(result, "nlp", "fusion")] * 2
    expected = [render_pdf(r) for r in inputs]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(render_pdf, inputs)) == expected


@needs_poppler
def test_undecodable_images_are_marked_not_fatal(complete: Sample, tmp_path: Path) -> None:
    heatmap = complete.result.heatmap_bytes()
    assert heatmap is not None
    truncated = to_data_uri(heatmap[0][:200])  # still starts like a JPEG
    result = vary(complete.result, vision={"heatmap_base64": truncated})
    text = _words(_text(render_pdf(result, original_png=b"DICM not a raster"), tmp_path))
    assert "Heatmap not available: the heatmap image could not be decoded" in text
    assert "78.4" in text  # the rest of the image analysis is still reported


@needs_poppler
def test_medium_risk_is_printed_with_its_advice(complete: Sample, tmp_path: Path) -> None:
    result = vary(complete.result, vision={"risk_level": "MEDIUM"}, fusion={"final_risk": "MEDIUM"})
    text = _words(_text(render_pdf(result), tmp_path))
    assert "MEDIUM risk" in text and "Overall risk: MEDIUM." in text
    assert "Review by a radiologist in the routine worklist" in text
