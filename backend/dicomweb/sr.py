"""The result as a DICOM Comprehensive 3D SR holding a TID 1500 Measurement Report.

- an image-level measurement group (TID 1501): the anomaly score and the decision threshold
  (UCUM `{score}`, 0-100), the model's confidence (UCUM `1`), the triage risk as a coded
  qualitative evaluation (SNOMED CT low / moderate / high risk), and the algorithm (model name,
  version, weights hash, calibration, code version);
- one planar ROI group (TID 1410) per heatmap region: a closed SCOORD polyline in the source
  image's pixels, referencing that image, with the region's relative strength;
- the decision-support statement and the result's warnings as text.

MedSight's own concepts use the private scheme 99MEDSIGHT (declared in the SR's Coding Scheme
Identification Sequence); units, risk values and the report structure are standard codes.
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from backend.contract import DISCLAIMER, AnalysisResult, RiskLevel
from backend.dicomweb.outbox import derived_uid
from backend.dicomweb.writers import (
    MANUFACTURER,
    SCHEME,
    SR_SERIES_NUMBER,
    Targets,
    WriterError,
    content_time,
    stamp,
)


def _own(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


ANOMALY_SCORE = _own("ANOMALY-SCORE", "Chest X-ray anomaly score")
THRESHOLD = _own("DECISION-THRESHOLD", "Anomaly score decision threshold")
MODEL_CONFIDENCE = _own("MODEL-CONFIDENCE", "Model confidence")
TRIAGE_RISK = _own("TRIAGE-RISK", "Triage risk level")
HEATMAP_REGION = _own("HEATMAP-REGION", "Region the anomaly score comes from")
REGION_STRENGTH = _own("REGION-STRENGTH", "Relative anomaly strength of region")
SCORE_UNIT = CodedConcept(value="{score}", scheme_designator="UCUM", meaning="score")
QUALITATIVE_EVALUATIONS = CodedConcept(
    value="C0034375", scheme_designator="UMLS", meaning="Qualitative Evaluations"
)
RISK_VALUES = {
    RiskLevel.LOW: codes.SCT.LowRisk,
    RiskLevel.MEDIUM: codes.SCT.ModerateRisk,
    RiskLevel.HIGH: codes.SCT.HighRisk,
}


def _model_name(result: AnalysisResult) -> str:
    model = result.provenance.models.get("vision")
    return f"{model.name} {model.version}"[:64] if model is not None else MANUFACTURER


def algorithm(result: AnalysisResult) -> hd.sr.AlgorithmIdentification:
    """Which model made the result, with the weights hash and calibration as parameters."""
    model = result.provenance.models.get("vision")
    if model is None:
        raise WriterError("the result names no vision model")
    parameters = [f"weights sha256 {model.sha256 or 'unknown'}"]
    if result.provenance.threshold is not None:
        parameters.append(f"decision threshold {result.provenance.threshold:g}")
    calibration = result.provenance.calibration
    if calibration and calibration.get("kind", "site") == "site":
        described = ", ".join(f"{k} {v}" for k, v in sorted(calibration.items()) if k != "kind")
        parameters.append(f"site calibration: {described}")
    else:
        parameters.append("calibration: the reference shipped with the model")
    parameters.append(f"MedSight {result.provenance.code_version or 'unknown version'}")
    return hd.sr.AlgorithmIdentification(
        name=f"{MANUFACTURER} {model.name}"[:64],
        version=model.version[:64],
        parameters=parameters,
        manufacturer=MANUFACTURER,
    )


def _image_group(result: AnalysisResult, targets: Targets) -> Any:
    vision = result.vision
    assert vision is not None  # noqa: S101 - checked by the caller
    algo = algorithm(result)
    measurements = [
        hd.sr.Measurement(
            name=ANOMALY_SCORE, value=vision.anomaly_score, unit=SCORE_UNIT, algorithm_id=algo
        ),
        hd.sr.Measurement(name=THRESHOLD, value=vision.threshold, unit=SCORE_UNIT),
        hd.sr.Measurement(
            name=MODEL_CONFIDENCE, value=vision.model_confidence, unit=codes.UCUM.NoUnits
        ),
    ]
    risk = result.final_risk or vision.risk_level
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(result.session_id, "sr-image-group"),
            identifier="MedSight chest X-ray anomaly assessment",
        ),
        algorithm_id=algo,
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=TRIAGE_RISK, value=RISK_VALUES[risk])
        ],
    )


def _region_groups(source: Dataset, result: AnalysisResult) -> list[Any]:
    vision = result.vision
    assert vision is not None  # noqa: S101 - checked by the caller
    columns, rows = float(source.get("Columns", 0) or 0), float(source.get("Rows", 0) or 0)
    groups = []
    for index, region in enumerate(vision.top_regions, start=1):
        x0, y0 = max(0.0, region.x), max(0.0, region.y)
        x1, y1 = region.x + region.width, region.y + region.height
        if columns and rows:
            x1, y1 = min(x1, columns), min(y1, rows)
        if x1 <= x0 or y1 <= y0:
            continue
        # SCOORD (column, row) with (0, 0) at the top-left corner of the top-left pixel.
        outline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32)
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=derived_uid(result.session_id, f"sr-region-{index}"),
                    identifier=f"Heatmap region {index}",
                ),
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                    graphic_data=outline,
                    source_image=hd.sr.SourceImageForRegion(
                        referenced_sop_class_uid=str(source.SOPClassUID),
                        referenced_sop_instance_uid=str(source.SOPInstanceUID),
                    ),
                ),
                finding_type=HEATMAP_REGION,
                measurements=[
                    hd.sr.Measurement(
                        name=REGION_STRENGTH, value=region.confidence, unit=codes.UCUM.NoUnits
                    )
                ],
            )
        )
    return groups


def _statements(result: AnalysisResult) -> Any:
    """TID 1500's Qualitative Evaluations container: the decision-support text and warnings."""
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    texts = [DISCLAIMER, *(f"Warning: {w}" for w in result.warnings)]
    container.ContentSequence = DicomSequence(
        [
            hd.sr.TextContentItem(
                name=codes.DCM.Comment,
                value=text[:10000],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
            for text in texts
        ]
    )
    return container


def measurement_report(source: Dataset, result: AnalysisResult, targets: Targets) -> Dataset:
    """The Comprehensive 3D SR document (a Measurement Report) for `result`."""
    if result.vision is None:
        raise WriterError("the image was not scored")
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", MANUFACTURER),
            name=MANUFACTURER,
            manufacturer_name=MANUFACTURER,
            model_name=_model_name(result),
        ),
    )
    groups = [_image_group(result, targets), *_region_groups(source, result)]

    def build(library: list[Dataset] | None) -> Any:
        return hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=device),
            procedure_reported=codes.SCT.ChestImaging,
            imaging_measurements=groups,
            title=codes.DCM.ImagingMeasurementReport,
            referenced_images=library,
        )

    try:
        report = build([source])
    except (AttributeError, ValueError, TypeError):
        # The Image Library (optional in TID 1500) describes the source from attributes such
        # as Patient Orientation that many radiographs leave out: the report goes without it.
        report = build(None)
    report[0].ContentSequence.append(_statements(result))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=targets.sr_series_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=targets.sr_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,  # an algorithm's output: never verified by a person here
        is_verified=False,
    )
    stamp(sr, content_time(result), "MedSight AI findings - decision support")
    return sr
