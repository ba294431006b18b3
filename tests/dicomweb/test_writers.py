"""The DICOM results, read back with highdicom and pydicom: the SR says what the result says
(score, risk, regions in the source image's pixels, model and calibration, the disclaimer) and
the heatmap image carries the banner, both filed into the source's study."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import SecondaryCaptureImageStorage

from backend.contract import DISCLAIMER, AnalysisResult, Region, RiskLevel
from backend.dicomweb.capture import BANNER
from backend.dicomweb.outbox import new_delivery
from backend.dicomweb.sr import ANOMALY_SCORE, REGION_STRENGTH, THRESHOLD, TRIAGE_RISK
from backend.dicomweb.writers import Targets, WriterError, result_instances
from tests.dicomweb.helpers import PATIENT

Analysed = tuple[bytes, AnalysisResult]


def targets_for(source: bytes, result: AnalysisResult) -> Targets:
    study = str(pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True).StudyInstanceUID)
    row = new_delivery(result.session_id, study)
    return Targets(
        study_instance_uid=row.study_instance_uid,
        sr_series_uid=row.sr_series_uid,
        sr_instance_uid=row.sr_instance_uid,
        image_series_uid=row.image_series_uid,
        image_instance_uid=row.image_instance_uid,
    )


def build(source: bytes, result: AnalysisResult) -> tuple[pydicom.Dataset, pydicom.Dataset]:
    sr, sc = result_instances(source, result, targets_for(source, result))
    return pydicom.dcmread(io.BytesIO(sr)), pydicom.dcmread(io.BytesIO(sc))


def with_vision(result: AnalysisResult, **changes: object) -> AnalysisResult:
    assert result.vision is not None
    return result.model_copy(update={"vision": result.vision.model_copy(update=changes)})


def measurement(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: object) -> float:
    [found] = group.get_measurements(name=name)
    return float(found.value)


def check_sr(sr_ds: pydicom.Dataset, source: bytes, result: AnalysisResult) -> None:
    """Everything the SR must say about `result`, read back through highdicom."""
    src = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    assert result.vision is not None
    sr = hd.sr.Comprehensive3DSR.from_dataset(sr_ds)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == src.StudyInstanceUID
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "StudyDate"):
        assert str(sr.get(keyword)) == str(src.get(keyword)), keyword
    assert sr.VerificationFlag == "UNVERIFIED"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    [image_group] = sr.content.get_image_measurement_groups()
    assert measurement(image_group, ANOMALY_SCORE) == pytest.approx(result.vision.anomaly_score)
    assert measurement(image_group, THRESHOLD) == pytest.approx(result.vision.threshold)
    [score] = image_group.get_measurements(name=ANOMALY_SCORE)
    assert score.unit.value == "{score}" and score.unit.scheme_designator == "UCUM"
    [risk] = image_group.get_qualitative_evaluations(name=TRIAGE_RISK)
    expected = {
        RiskLevel.LOW: codes.SCT.LowRisk,
        RiskLevel.MEDIUM: codes.SCT.ModerateRisk,
        RiskLevel.HIGH: codes.SCT.HighRisk,
    }[result.final_risk or result.vision.risk_level]
    assert risk.value == expected
    model = result.provenance.models["vision"]
    assert texts(sr_ds, codes.DCM.AlgorithmName)[0] == f"MedSight {model.name}"
    assert texts(sr_ds, codes.DCM.AlgorithmVersion)[0] == model.version
    params = texts(sr_ds, codes.DCM.AlgorithmParameters)
    assert f"weights sha256 {model.sha256}" in params
    assert any(p.startswith(("site calibration:", "calibration:")) for p in params)

    regions = sr.content.get_planar_roi_measurement_groups()
    assert len(regions) == len(result.vision.top_regions)
    for group, region in zip(regions, result.vision.top_regions, strict=True):
        outline = group.roi
        assert outline is not None and outline.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        x0, y0, x1, y1 = region.x, region.y, region.x + region.width, region.y + region.height
        np.testing.assert_allclose(
            outline.value, [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], atol=1e-3
        )
        assert outline.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
            src.SOPInstanceUID
        )
        assert measurement(group, REGION_STRENGTH) == pytest.approx(region.confidence)
    assert DISCLAIMER in texts(sr_ds, codes.DCM.Comment)


def _walk(ds: pydicom.Dataset):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def texts(ds: pydicom.Dataset, name: object) -> list[str]:
    """The TEXT content items of the document with this concept name, in document order."""
    code = getattr(name, "value", None)
    return [
        str(item.TextValue)
        for item in _walk(ds)
        if item.get("ValueType") == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == code
    ]


def test_the_sr_says_what_the_result_says(analysed: Analysed) -> None:
    source, result = analysed
    sr, _ = build(source, result)
    check_sr(sr, source, result)


def test_regions_risk_and_calibration_variants(analysed: Analysed) -> None:
    source, result = analysed
    regions = [
        Region(x=10, y=12, width=40, height=30, confidence=0.9),
        Region(x=200, y=220, width=500, height=500, confidence=0.4),  # past the edge: clipped
    ]
    varied = with_vision(result, top_regions=regions[:1], risk_level=RiskLevel.MEDIUM)
    varied = varied.model_copy(
        update={
            "fusion": None,
            "provenance": result.provenance.model_copy(
                update={"calibration": {"sha256": "ab" * 32, "images": 212}}
            ),
        }
    )
    sr, _ = build(source, varied)
    check_sr(sr, source, varied)
    params = texts(sr, codes.DCM.AlgorithmParameters)
    assert f"site calibration: images 212, sha256 {'ab' * 32}" in params

    clipped = with_vision(result, top_regions=regions[1:])
    sr, _ = build(source, clipped)
    [group] = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_planar_roi_measurement_groups()
    src = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    assert (
        np.max(group.roi.value[:, 0]) == src.Columns and np.max(group.roi.value[:, 1]) == src.Rows
    )

    none = with_vision(result, top_regions=[])
    sr, _ = build(source, none)
    assert (
        hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_planar_roi_measurement_groups() == []
    )


def test_the_heatmap_image_carries_the_banner_in_its_pixels(analysed: Analysed) -> None:
    source, result = analysed
    _, sc = build(source, result)
    src = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    assert sc.SOPClassUID == SecondaryCaptureImageStorage
    assert sc.StudyInstanceUID == src.StudyInstanceUID
    assert sc.SeriesInstanceUID not in {src.SeriesInstanceUID}
    assert sc.BurnedInAnnotation == "YES"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    for keyword, value in PATIENT.items():
        assert str(sc.get(keyword)) == value
    heatmap = result.heatmap_bytes()
    assert heatmap is not None
    from PIL import Image

    panels = np.asarray(Image.open(io.BytesIO(heatmap[0])).convert("RGB"), dtype=np.int16)
    pixels = sc.pixel_array.astype(np.int16)  # RGB, decoded from JPEG Baseline
    banner_h = pixels.shape[0] - panels.shape[0]
    assert banner_h > 20 and pixels.shape[1] >= panels.shape[1]
    banner = pixels[:banner_h]
    yellow = (banner[..., 0] > 180) & (banner[..., 1] > 140) & (banner[..., 2] < 90)
    assert yellow.sum() > 50, "the banner's first line is missing"
    assert banner.mean() < 60  # a dark strip with text on it
    below = pixels[banner_h:, : panels.shape[1]]
    assert np.abs(below - panels).mean() < 6  # the panels themselves, through one more JPEG
    assert BANNER.startswith("DECISION SUPPORT")


def test_rebuilding_gives_the_same_instances(analysed: Analysed) -> None:
    """A retry re-sends exactly what the PACS may already hold."""
    source, result = analysed
    targets = targets_for(source, result)
    assert result_instances(source, result, targets) == result_instances(source, result, targets)


def test_what_cannot_be_built_is_a_writer_error(analysed: Analysed) -> None:
    source, result = analysed
    with pytest.raises(WriterError, match="not in the study"):
        result_instances(
            source,
            result,
            Targets("1.2.3", "1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4"),
        )
    with pytest.raises(WriterError, match="cannot be read"):
        result_instances(b"not dicom", result, targets_for(source, result))
    with pytest.raises(WriterError):
        result_instances(
            source, result.model_copy(update={"vision": None}), targets_for(source, result)
        )


def test_a_source_with_orientation_is_described_in_an_image_library(analysed: Analysed) -> None:
    source, result = analysed
    ds = pydicom.dcmread(io.BytesIO(source))
    ds.PatientOrientation = ["L", "F"]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    oriented = buf.getvalue()
    sr, sc = build(oriented, result)
    check_sr(sr, oriented, result)
    names = [
        i.ConceptNameCodeSequence[0].CodeMeaning
        for i in _walk(sr)
        if "ConceptNameCodeSequence" in i
    ]
    assert "Image Library" in names
    assert list(sc.PatientOrientation) == ["L", "F"]  # each panel keeps the source's orientation
    # Without it (the other tests' source), the report leaves the optional library out.
    plain, plain_sc = build(source, result)
    assert "Image Library" not in [
        i.ConceptNameCodeSequence[0].CodeMeaning
        for i in _walk(plain)
        if "ConceptNameCodeSequence" in i
    ]
    assert not plain_sc.PatientOrientation
