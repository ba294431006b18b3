"""Clinical PDF report of one analysis, built with ReportLab platypus and built-in fonts."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from backend.contract import AnalysisResult, OverallStatus, RiskLevel, VisionFindings
from backend.reports.content import (
    DISCLAIMER,
    PART_LABELS,
    ReportContent,
    as_float,
    build_content,
    fmt,
    not_available,
)

logger = logging.getLogger(__name__)

PAGE_W, PAGE_H = A4
MARGIN = 15 * mm
BODY_W = PAGE_W - 2 * MARGIN - 12  # the frame pads 6 pt each side
LEFT, RIGHT = MARGIN + 6, PAGE_W - MARGIN - 6  # header and footer line up with the body
FONT, BOLD, MONO = "Helvetica", "Helvetica-Bold", "Courier"
PRINT_DPI = 300
JPEG_QUALITY = 95

INK = colors.HexColor("#1F2933")
MUTED = colors.HexColor("#616E7C")
RULE = colors.HexColor("#CBD2D9")
SHADE = colors.HexColor("#F0F4F8")
CAUTION = colors.HexColor("#C25E00")  # medium risk, and whatever is missing or incomplete
RISK_COLOURS: dict[RiskLevel, colors.Color] = {
    RiskLevel.HIGH: colors.HexColor("#B71C1C"),
    RiskLevel.MEDIUM: CAUTION,
    RiskLevel.LOW: colors.HexColor("#1B5E20"),
}
STATUS_COLOURS: dict[OverallStatus, colors.Color] = {
    OverallStatus.PARTIAL: colors.HexColor("#FFF4E5"),
    OverallStatus.FAILED: colors.HexColor("#FDECEA"),
}


def _style(name: str, **kw: Any) -> ParagraphStyle:
    base: dict[str, Any] = {"fontName": FONT, "fontSize": 9, "leading": 11.5, "textColor": INK}
    base.update(kw)
    return ParagraphStyle(name, **base)


BODY = _style("body", spaceAfter=3)
SMALL = _style("small", fontSize=7.5, leading=9.5, textColor=MUTED)
TITLE = _style("title", fontName=BOLD, fontSize=15, leading=19, spaceAfter=2)
H2 = _style("h2", fontName=BOLD, fontSize=10.5, leading=13, spaceBefore=8, spaceAfter=4)
CELL = _style("cell", fontSize=8.5, leading=10.5)
CELL_B = _style("cellb", fontName=BOLD, fontSize=8.5, leading=10.5)
CELL_MUTED = _style("cellm", fontSize=8.5, leading=10.5, textColor=MUTED)
HASH = _style("hash", fontName=MONO, fontSize=7, leading=9)
CAPTION = _style("caption", fontSize=8, leading=10, textColor=MUTED, alignment=TA_CENTER)
SCORE = _style("score", fontName=BOLD, fontSize=22, leading=26)
BULLET = _style("bullet", leftIndent=10, bulletIndent=2)

GRID = TableStyle(
    [
        ("FONT", (0, 0), (-1, -1), FONT, 8.5),
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, RULE),
        ("LINEBELOW", (0, 1), (-1, -1), 0.3, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
    ]
)


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    """A paragraph of plain text: escaped, because names and notes come from users."""
    return Paragraph(escape(text), style)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "\u2013"


def _grid(rows: list[list[Any]], widths: list[float], style: TableStyle = GRID) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1)
    table.setStyle(style)
    return table


def _missing_note(part: str, reason: str) -> Paragraph:
    return Paragraph(
        f"<b>{escape(PART_LABELS[part])}:</b> <i>{escape(not_available(reason))}</i>",
        _style("missing", textColor=CAUTION),
    )


class _NumberedCanvas(Canvas):  # type: ignore[misc]
    """A canvas that writes 'Page n of N' once the page count is known."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # ReportLab's method name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont(FONT, 7.5)
            self.setFillColor(MUTED)
            self.drawRightString(RIGHT, 9 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _page_frame(content: ReportContent) -> Any:
    """The header and footer drawn on every page."""
    patient = content.patient_ref or "no patient reference"
    if len(patient) > 40:  # the identity table shows it whole; the header must stay one line
        patient = patient[:39] + "\u2026"
    right = f"Patient {patient}  |  Session {content.session_id}"

    def draw(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(BOLD, 8.5)
        canvas.setFillColor(INK)
        canvas.drawString(LEFT, PAGE_H - 10 * mm, "MedSight")
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(MUTED)
        canvas.drawString(
            LEFT + canvas.stringWidth("MedSight ", BOLD, 8.5),
            PAGE_H - 10 * mm,
            "Chest X-ray decision support",
        )
        canvas.drawRightString(RIGHT, PAGE_H - 10 * mm, right)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(LEFT, PAGE_H - 11.5 * mm, RIGHT, PAGE_H - 11.5 * mm)
        canvas.line(LEFT, 12 * mm, RIGHT, 12 * mm)
        canvas.drawString(
            LEFT, 9 * mm, "Decision support, not a diagnosis: confirm all findings clinically."
        )
        canvas.restoreState()

    return draw


def _identity(content: ReportContent) -> list[Flowable]:
    label = _style("idlabel", fontSize=7, leading=9, textColor=MUTED)
    cells = [
        ("Patient reference", content.patient_ref or "not recorded"),
        ("Session", content.session_id),
        ("Analysed", _when(content.reported_at)),
        ("Status", content.status.value),
    ]
    row = [[_p(k, label), _p(v, CELL_B)] for k, v in cells]
    table = Table(
        [[Table([[a], [b]], style=[("LEFTPADDING", (0, 0), (-1, -1), 0)]) for a, b in row]],
        colWidths=[0.2 * BODY_W, 0.42 * BODY_W, 0.24 * BODY_W, 0.14 * BODY_W],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("BACKGROUND", (0, 0), (-1, -1), SHADE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    out: list[Flowable] = [_p("Chest X-ray decision-support report", TITLE), table]
    if content.task_id:
        out.append(_p(f"Task {content.task_id}", SMALL))
    if content.status is not OverallStatus.COMPLETE or content.warnings:
        out.append(Spacer(1, 4))
        out.append(_status_banner(content))
    return out


def _status_banner(content: ReportContent) -> Flowable:
    complete = content.status is OverallStatus.COMPLETE
    if complete:
        lines = ["<b>Warnings recorded during the analysis.</b>"]
    else:
        lines = [
            f"<b>{escape(content.status.value)} analysis.</b> Parts that could not be computed are "
            "marked <i>not available</i> with the reason; do not read them as normal findings."
        ]
    lines += [f"\u2022 {escape(w)}" for w in content.warnings]
    table = Table([[Paragraph("<br/>".join(lines), BODY)]], colWidths=[BODY_W])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), STATUS_COLOURS.get(content.status, SHADE)),
                (
                    "BOX",
                    (0, 0),
                    (-1, -1),
                    0.6,
                    RULE if complete else CAUTION,
                ),
            ]
        )
    )
    return table


def _image(data: bytes, width: float, max_height: float) -> Image:
    """An image fitted to the box, embedded as a high-quality JPEG of at most print resolution."""
    # ReportLab embeds a PNG by decoding it to raw RGB and deflating that again: a product
    # panel (3 x 512 px) then costs ~150 ms and 600 KB. A JPEG passes through as is: about
    # half the time and a sixth of the size. The panels are a visual aid; the analysed image
    # itself is identified by its SHA-256 in the provenance table.
    src = PILImage.open(io.BytesIO(data))  # in memory: nothing to close
    w, h = src.size
    scale = min(width / w, max_height / h)
    rgb = src if src.mode == "RGB" else src.convert("RGB")
    max_px = round(w * scale * PRINT_DPI / 72)
    if w > max_px:
        rgb = rgb.resize((max_px, max(1, round(h * max_px / w))), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    buffer.seek(0)
    return Image(buffer, width=w * scale, height=h * scale)


def _try_image(data: bytes | None, width: float, max_height: float) -> Image | None:
    """The image, or None when there is none or it cannot be decoded (the report goes on)."""
    if data is None:
        return None
    try:
        return _image(data, width, max_height)
    except (OSError, ValueError, PILImage.DecompressionBombError):
        logger.warning("report image could not be decoded", exc_info=True)
        return None


def _panels(content: ReportContent, original_png: bytes | None) -> list[Flowable]:
    out: list[Flowable] = [_p("Image and anomaly heatmap", H2)]
    img = _try_image(content.heatmap, BODY_W, 75 * mm)
    if img is not None:
        captions = ["Original (CLAHE)", "Anomaly heatmap", "Overlay"]
        table = Table(
            [
                [img],
                [Table([[_p(c, CAPTION) for c in captions]], colWidths=[img.drawWidth / 3] * 3)],
            ],
            hAlign="CENTER",
        )
        table.setStyle(
            TableStyle(
                [
                    ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                ]
            )
        )
        out.append(table)
        return out
    if content.heatmap is not None:
        reason = "the heatmap image could not be decoded"
    else:
        reason = content.heatmap_missing or "the vision stage returned no heatmap"
    out.append(Paragraph(f"<i>Heatmap {escape(not_available(reason))}</i>", BODY))
    original = _try_image(original_png, BODY_W / 3, 60 * mm)
    if original is not None:
        out += [Spacer(1, 4), original, _p("Original image as uploaded", CAPTION)]
    return out


def _score_block(vision: VisionFindings, content: ReportContent) -> Flowable:
    colour = RISK_COLOURS[vision.risk_level]
    summary = Table(
        [
            [_p("Anomaly score", CELL_MUTED)],
            [Paragraph(f"{fmt(vision.anomaly_score, 1)}<font size=10> / 100</font>", SCORE)],
            [
                Paragraph(
                    f'<font color="{colour.hexval()}"><b>{vision.risk_level.value} risk</b></font>',
                    _style("risk", fontSize=12, leading=15),
                )
            ],
            [
                _p(
                    f"Threshold {fmt(vision.threshold, 1)} (scores at or above are flagged)",
                    CELL_MUTED,
                )
            ],
            [_p(f"Model confidence {fmt(vision.model_confidence)}", CELL_MUTED)],
            *(
                [[_p(f"Out-of-distribution score {fmt(vision.ood_score)}", CELL_MUTED)]]
                if as_float(vision.ood_score) is not None
                else []
            ),
        ],
        colWidths=[0.3 * BODY_W],
    )
    summary.setStyle(
        TableStyle([("BOX", (0, 0), (-1, -1), 0.8, colour), ("LEFTPADDING", (0, 0), (-1, -1), 6)])
    )
    rows: list[list[Any]] = [
        [_p("Score component", CELL_B), _p("Value", CELL_B), _p("z-score", CELL_B)]
    ]
    for comp in content.components:
        rows.append([_p(comp.label, CELL), _p(_num(comp.value), CELL), _p(fmt(comp.z), CELL)])
    if not content.components:
        rows.append([_p(not_available("no score components recorded"), CELL_MUTED), "", ""])
    comp_table = _grid(rows, [0.36 * BODY_W, 0.13 * BODY_W, 0.13 * BODY_W])
    note = _p(
        "z-score: how far each part lies from the normal reference images, in standard "
        "deviations. The anomaly score combines these parts.",
        SMALL,
    )
    outer = Table(
        [[summary, [comp_table, Spacer(1, 3), note]]],
        colWidths=[0.34 * BODY_W, 0.66 * BODY_W],
        hAlign="LEFT",
    )
    outer.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    return outer


def _num(value: float | None) -> str:
    number = as_float(value)
    if number is None:
        return "\u2013"
    return (
        f"{number:.3g}"
        if abs(number) < 0.01 or abs(number) >= 1000
        else f"{number:.3f}".rstrip("0").rstrip(".")
    )


def _vision(content: ReportContent) -> list[Flowable]:
    out: list[Flowable] = [_p("Anomaly score", H2)]
    vision = content.vision
    if vision is None:
        out.append(_missing_note("vision", content.missing["vision"]))
        return out
    out.append(_score_block(vision, content))
    if vision.top_regions:
        rows: list[list[Any]] = [
            [_p(h, CELL_B) for h in ("Region", "x, y (px)", "Size (px)", "Confidence")]
        ]
        for i, reg in enumerate(vision.top_regions):
            rows.append(
                [
                    _p(str(i + 1), CELL),
                    _p(f"{fmt(reg.x, 0)}, {fmt(reg.y, 0)}", CELL),
                    _p(f"{fmt(reg.width, 0)} \u00d7 {fmt(reg.height, 0)}", CELL),
                    _p(fmt(reg.confidence), CELL),
                ]
            )
        out += [
            Spacer(1, 6),
            _p("Regions with the highest anomaly (pixel coordinates of the analysed image)", SMALL),
        ]
        out.append(_grid(rows, [0.12 * BODY_W, 0.2 * BODY_W, 0.2 * BODY_W, 0.16 * BODY_W]))
    return out


def _text_findings(content: ReportContent) -> list[Flowable]:
    out: list[Flowable] = [_p("Clinical text findings", H2)]
    nlp = content.nlp
    if nlp is None:
        out.append(_missing_note("nlp", content.missing["nlp"]))
        return out
    if nlp.primary_diagnosis:
        out.append(
            Paragraph(
                f"Leading condition from the text: <b>{escape(nlp.primary_diagnosis)}</b> "
                f"(confidence {fmt(nlp.diagnosis_confidence)})",
                BODY,
            )
        )
    else:
        out.append(_p("The text names no leading condition.", BODY))
    out.append(Spacer(1, 4))
    ent_rows: list[list[Any]] = [[_p(h, CELL_B) for h in ("Category", "Entity", "Assertion")]]
    for ent in content.entities:
        if ent.negated:
            ent_rows.append(
                [
                    _p(ent.category, CELL_MUTED),
                    Paragraph(f"<strike>{escape(ent.text)}</strike>", CELL_MUTED),
                    _p("negated (absent)", CELL_B),
                ]
            )
        else:
            ent_rows.append([_p(ent.category, CELL), _p(ent.text, CELL), _p(ent.assertion, CELL)])
    if len(ent_rows) == 1:
        ent_rows.append([_p("none found", CELL_MUTED), "", ""])
    diff_rows: list[list[Any]] = [[_p("Differential", CELL_B), _p("Confidence", CELL_B)]]
    for item in nlp.differential:
        if item.disease:
            diff_rows.append([_p(item.disease, CELL), _p(fmt(item.confidence), CELL)])
    if len(diff_rows) == 1:
        diff_rows.append([_p("none", CELL_MUTED), ""])
    outer = Table(
        [
            [
                _grid(ent_rows, [0.15 * BODY_W, 0.22 * BODY_W, 0.19 * BODY_W]),
                _grid(diff_rows, [0.25 * BODY_W, 0.13 * BODY_W]),
            ]
        ],
        colWidths=[0.58 * BODY_W, 0.42 * BODY_W],
        hAlign="LEFT",
    )
    outer.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    out.append(outer)
    return out


def _fusion(content: ReportContent) -> list[Flowable]:
    out: list[Flowable] = [_p("Image-text fusion", H2)]
    fusion = content.fusion
    if fusion is None:
        out.append(_missing_note("fusion", content.missing["fusion"]))
        return out
    rows = [
        [
            _p("Image-text similarity", CELL_B),
            _p("Alignment", CELL_B),
            _p("Final risk", CELL_B),
            _p("Sources disagree", CELL_B),
        ],
        [
            _p(fmt(fusion.image_text_similarity), CELL),
            _p(fusion.alignment.value, CELL),
            _p(fusion.final_risk.value, CELL),
            _p("yes" if fusion.disagreement else "no", CELL),
        ],
    ]
    out.append(_grid(rows, [0.25 * BODY_W] * 4))
    return out


def _narrative(content: ReportContent) -> list[Flowable]:
    out: list[Flowable] = [_p("Conclusion", H2), _p(content.conclusion)]
    out.append(_p("Narrative", H2))
    if content.narrative:
        out += [_p(par.strip()) for par in content.narrative.split("\n\n") if par.strip()]
    else:
        out.append(Paragraph(f"<i>{escape(not_available('no narrative was generated'))}</i>", BODY))
    out.append(_p("Recommendations", H2))
    out += [Paragraph(escape(r), BULLET, bulletText="\u2022") for r in content.recommendations]
    return out


def _provenance(content: ReportContent) -> list[Flowable]:
    prov = content.provenance
    rows: list[list[Any]] = [
        [_p("Item", CELL_B), _p("Name / version", CELL_B), _p("SHA-256", CELL_B)]
    ]
    rows.append(
        [
            _p("Input image", CELL),
            _p(prov.image_desc or "\u2013", CELL),
            _p(prov.image_sha256 or "not recorded", HASH),
        ]
    )
    for role, model in prov.models.items():
        rows.append(
            [
                _p(f"Model: {role}", CELL),
                _p(f"{model.name} {model.version}", CELL),
                _p(model.sha256 or "unknown", HASH),
            ]
        )
    if not prov.models:
        rows.append([_p("Models", CELL), _p("not recorded", CELL_MUTED), ""])
    rows.append([_p("Decision threshold", CELL), _p(fmt(prov.threshold, 1), CELL), ""])
    rows.append([_p("Code version", CELL), _p(prov.code_version or "not recorded", CELL), ""])
    total = as_float(content.timings.total_ms)
    if total:  # a failed analysis records 0 ms
        rows.append([_p("Processing time", CELL), _p(f"{total:.0f} ms", CELL), ""])
    block: list[Flowable] = [
        _p("Provenance", H2),
        _grid(rows, [0.17 * BODY_W, 0.27 * BODY_W, 0.56 * BODY_W]),
    ]
    disclaimer = Table(
        [[Paragraph(f"<b>Disclaimer.</b> {escape(DISCLAIMER)}", BODY)]], colWidths=[BODY_W]
    )
    disclaimer.setStyle(
        TableStyle([("BOX", (0, 0), (-1, -1), 0.8, INK), ("BACKGROUND", (0, 0), (-1, -1), SHADE)])
    )
    return [KeepTogether(block), Spacer(1, 8), KeepTogether([disclaimer])]


def render_pdf(result: AnalysisResult, original_png: bytes | None = None) -> bytes:
    """Render an analysis result as a one- or two-page clinical PDF."""
    content = build_content(result)
    # ASCII85 only makes binary streams 25% larger, and without ReportLab's optional C
    # accelerator it is pure Python and costs ~3x the rest of the render. Always the same value,
    # so concurrent renders cannot disagree.
    rl_config.useA85 = 0
    story: list[Flowable] = []
    story += _identity(content)
    # A heading never ends a page apart from its section.
    for section in (
        _panels(content, original_png),
        _vision(content),
        _text_findings(content),
        _fusion(content),
    ):
        story.append(KeepTogether(section))
    story += _narrative(content)
    story += _provenance(content)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + 3 * mm,
        bottomMargin=MARGIN + 2 * mm,
        title=f"MedSight report {content.session_id}",
        author="MedSight",
        subject="Chest X-ray decision-support report",
        creator="MedSight",
        invariant=1,  # same result, same bytes: lets the API cache by ETag
    )
    frame = _page_frame(content)
    doc.build(story, onFirstPage=frame, onLaterPages=frame, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()
