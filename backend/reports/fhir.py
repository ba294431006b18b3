"""FHIR R4 export of one analysis: a Bundle with DiagnosticReport, Observations, Media, Provenance.

Codes used (all real codes from published systems, except MedSight's own URN systems):
- DiagnosticReport.code: LOINC 18748-4 "Diagnostic imaging study".
- DiagnosticReport.category: HL7 v2-0074 RAD "Radiology".
- Observation.category: observation-category "imaging".
- Conclusion: LOINC 19005-8 "Radiology Imaging study [Impression] (narrative)".
- Recommendations: LOINC 18783-1 "Radiology Study recommendation (narrative)".
- Anomaly score, risk level, image-text fusion and text findings have no standard code: they use
  the local system ``urn:medsight:fhir:observation-code`` with a human-readable ``code.text``.
- Score unit: UCUM ``{score}``; interpretation: v3-ObservationInterpretation H / N against the
  threshold (given as the referenceRange high bound).
- Missing parts: data-absent-reason "error", Observation.status "cancelled", reason in a note.
- Media.type: media-type "image"; Device.deviceName.type: "model-name";
  Provenance.activity: v3-DataOperation CREATE; agents: provenance-participant-type "assembler"
  (MedSight) and "performer" (each model); the input image is a "source" entity.
- Status: COMPLETE -> "preliminary" (an unreviewed decision-support result awaiting clinician
  confirmation), PARTIAL -> "partial", FAILED -> "cancelled".
Resource ids are UUIDv5 of the session id, so one result always gives the same bundle.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from backend.contract import AnalysisResult, OverallStatus, RiskLevel
from backend.reports.content import (
    DISCLAIMER,
    PART_LABELS,
    ReportContent,
    as_float,
    build_content,
    not_available,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

OBS_CODE = "urn:medsight:fhir:observation-code"
RISK_CODE = "urn:medsight:fhir:risk-level"
SESSION_ID = "urn:medsight:fhir:session-id"
TASK_ID = "urn:medsight:fhir:task-id"
PATIENT_REF = "urn:medsight:fhir:patient-ref"
SHA256 = "urn:medsight:fhir:sha256"

REPORT_STATUS = {
    OverallStatus.COMPLETE: "preliminary",
    OverallStatus.PARTIAL: "partial",
    OverallStatus.FAILED: "cancelled",
}
RISK_DISPLAY = {
    RiskLevel.LOW: "Low risk",
    RiskLevel.MEDIUM: "Medium risk",
    RiskLevel.HIGH: "High risk",
}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": display}


def _local(code: str, text: str) -> dict[str, Any]:
    return _concept(OBS_CODE, code, text)


def _score_qty(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "score", "system": UCUM, "code": "{score}"}


def _instant(value: datetime) -> str:
    # Always UTC with a Z: the form FHIR libraries write back, so a round trip is lossless.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _attachment(data: bytes, content_type: str, title: str, created: str) -> dict[str, Any]:
    return {
        "contentType": content_type,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        # FHIR defines Attachment.hash as the base64 of the SHA-1 of the data.
        "hash": base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode(),
        "title": title,
        "creation": created,
    }


def _narrative(*paragraphs: str) -> dict[str, Any]:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs if p)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


@dataclass
class _Bundle:
    """Collects resources with stable ids and renders references the way base_url asks."""

    session_id: str
    base_url: str
    entries: list[dict[str, Any]] = field(default_factory=list)

    def rid(self, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:medsight:{self.session_id}:{name}"))

    def _urn(self) -> bool:
        return self.base_url.startswith("urn:uuid:")

    def ref(self, resource_type: str, name: str) -> dict[str, str]:
        rid = self.rid(name)
        if self._urn():
            return {"reference": f"urn:uuid:{rid}"}
        return {"reference": f"{resource_type}/{rid}"}

    def add(self, name: str, resource: dict[str, Any]) -> dict[str, str]:
        rid = self.rid(name)
        resource = {"resourceType": resource["resourceType"], "id": rid, **resource}
        if self._urn():
            full_url = f"urn:uuid:{rid}"
        else:
            full_url = f"{self.base_url.rstrip('/')}/{resource['resourceType']}/{rid}"
        self.entries.append({"fullUrl": full_url, "resource": resource})
        return self.ref(resource["resourceType"], name)


def _subject(content: ReportContent) -> dict[str, Any]:
    if content.patient_ref is None:
        return {}
    return {
        "subject": {
            "identifier": {"system": PATIENT_REF, "value": content.patient_ref},
            "display": f"Patient {content.patient_ref}",
        }
    }


def _observation(
    content: ReportContent,
    when: str,
    code: dict[str, Any],
    missing_part: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "preliminary",
        "category": [_concept(OBS_CATEGORY, "imaging", "Imaging")],
        "code": code,
        **_subject(content),
        "effectiveDateTime": when,
        "issued": when,
    }
    if missing_part is not None:
        reason = content.missing[missing_part]
        obs["status"] = "cancelled"
        obs["dataAbsentReason"] = _concept(ABSENT, "error", "Error")
        obs["note"] = [{"text": f"{PART_LABELS[missing_part]} {not_available(reason)}"}]
    obs.update(fields)
    return obs


def _score_observation(
    content: ReportContent, when: str, device: dict[str, str] | None
) -> dict[str, Any]:
    code = _local("anomaly-score", "Chest X-ray anomaly score (0-100)")
    vision = content.vision
    if vision is None:
        return _observation(content, when, code, "vision")
    score = as_float(vision.anomaly_score)
    threshold = as_float(vision.threshold)
    if threshold is None:
        threshold = content.provenance.threshold
    fields: dict[str, Any] = {}
    if score is not None:
        fields["valueQuantity"] = _score_qty(score)
    else:
        fields["dataAbsentReason"] = _concept(ABSENT, "error", "Error")
    if threshold is not None:
        fields["referenceRange"] = [
            {"high": _score_qty(threshold), "text": "scores at or above the threshold are flagged"}
        ]
        if score is not None:
            flagged = score >= threshold
            fields["interpretation"] = [
                _concept(INTERPRETATION, "H", "High")
                if flagged
                else _concept(INTERPRETATION, "N", "Normal")
            ]
    if device is not None:
        fields["device"] = device
    components: list[dict[str, Any]] = []
    for comp in content.components:
        for part, number, unit_text in (
            ("value", comp.value, "raw value"),
            ("z", comp.z, "z-score"),
        ):
            if number is not None:
                components.append(
                    {
                        "code": _local(
                            f"component-{comp.key}-{part}", f"{comp.label}, {unit_text}"
                        ),
                        "valueQuantity": {
                            "value": number,
                            "unit": "1",
                            "system": UCUM,
                            "code": "1",
                        },
                    }
                )
    for key, value, text in (
        ("model-confidence", vision.model_confidence, "Model confidence (0-1)"),
        ("ood-score", vision.ood_score, "Out-of-distribution score"),
    ):
        number = as_float(value)
        if number is not None:
            components.append(
                {
                    "code": _local(key, text),
                    "valueQuantity": {"value": number, "unit": "1", "system": UCUM, "code": "1"},
                }
            )
    if components:
        fields["component"] = components
    return _observation(content, when, code, **fields)


def _risk_concept(risk: RiskLevel) -> dict[str, Any]:
    return _concept(RISK_CODE, risk.value, RISK_DISPLAY[risk])


def _risk_observation(content: ReportContent, when: str) -> dict[str, Any]:
    code = _local("risk-level", "Overall triage risk level")
    if content.final_risk is None:
        if "vision" in content.missing:
            return _observation(content, when, code, "vision")
        return _observation(
            content, when, code, dataAbsentReason=_concept(ABSENT, "unknown", "Unknown")
        )
    components = []
    if content.vision is not None:
        components.append(
            {
                "code": _local("image-risk-level", "Image-only risk level"),
                "valueCodeableConcept": _risk_concept(content.vision.risk_level),
            }
        )
    fields: dict[str, Any] = {"valueCodeableConcept": _risk_concept(content.final_risk)}
    if components:
        fields["component"] = components
    if content.missing:
        fields["note"] = [
            {"text": f"{PART_LABELS[p]} {not_available(r)}"} for p, r in content.missing.items()
        ]
    return _observation(content, when, code, **fields)


def _fusion_observation(content: ReportContent, when: str) -> dict[str, Any]:
    code = _local("image-text-fusion", "Agreement between image and clinical-text findings")
    fusion = content.fusion
    if fusion is None:
        return _observation(content, when, code, "fusion")
    components: list[dict[str, Any]] = []
    similarity = as_float(fusion.image_text_similarity)
    if similarity is not None:
        components.append(
            {
                "code": _local("image-text-similarity", "Image-text similarity (0-1)"),
                "valueQuantity": {"value": similarity, "unit": "1", "system": UCUM, "code": "1"},
            }
        )
    components.append(
        {
            "code": _local("sources-disagree", "Image and text disagree"),
            "valueBoolean": fusion.disagreement,
        }
    )
    return _observation(
        content,
        when,
        code,
        valueCodeableConcept={"text": fusion.alignment.value},
        component=components,
    )


def _text_observation(
    content: ReportContent, when: str, device: dict[str, str] | None
) -> dict[str, Any]:
    code = _local("clinical-text-findings", "Findings from the clinical text")
    nlp = content.nlp
    if nlp is None:
        return _observation(content, when, code, "nlp")
    value = nlp.primary_diagnosis or "no leading condition"
    components: list[dict[str, Any]] = []
    for item in nlp.differential:
        if not item.disease:
            continue
        confidence = as_float(item.confidence)
        comp: dict[str, Any] = {"code": {"text": f"Differential: {item.disease} (confidence 0-1)"}}
        if confidence is None:
            comp["dataAbsentReason"] = _concept(ABSENT, "unknown", "Unknown")
        else:
            comp["valueQuantity"] = {"value": confidence, "unit": "1", "system": UCUM, "code": "1"}
        components.append(comp)
    notes = [{"text": f"{e.category}: {e.text} ({e.assertion})"} for e in content.entities]
    fields: dict[str, Any] = {"valueCodeableConcept": {"text": value}}
    if components:
        fields["component"] = components
    if notes:
        fields["note"] = notes
    if device is not None:
        fields["device"] = device
    return _observation(content, when, code, **fields)


def _device(
    bundle: _Bundle,
    name: str,
    model_name: str,
    version: str,
    sha: str | None,
    kind: str,
    **extra: Any,
) -> dict[str, str]:
    device: dict[str, Any] = {
        "resourceType": "Device",
        "status": "active",
        "deviceName": [{"name": model_name, "type": "model-name"}],
        "type": {"text": kind},
        "version": [{"value": version}],
    }
    if sha:
        device["identifier"] = [{"system": SHA256, "value": sha}]
    return bundle.add(name, {**device, **extra})


def build_fhir_bundle(
    result: AnalysisResult, *, base_url: str = "urn:uuid:", pdf: bytes | None = None
) -> dict[str, Any]:
    """Export an analysis result as a JSON-ready FHIR R4 collection Bundle.

    ``base_url`` "urn:uuid:" gives urn:uuid fullUrls and references; a FHIR server base such
    as "https://host/fhir" gives ``{base}/{type}/{id}`` fullUrls and relative references.
    ``pdf``, when given, is attached to the DiagnosticReport as its presentedForm.
    """
    if not base_url.startswith(("urn:uuid:", "http://", "https://")):
        raise ValueError("base_url must be 'urn:uuid:' or an absolute http(s) FHIR base URL")
    content = build_content(result)
    reported = content.reported_at
    if reported is None:
        raise ValueError("the analysis result has no created_at or completed_at time")
    when = _instant(reported)
    effective = _instant(content.created_at or reported)
    bundle = _Bundle(content.session_id, base_url)
    prov = content.provenance

    threshold_property = (
        {}
        if prov.threshold is None
        else {
            "property": [
                {
                    "type": {"text": "Anomaly score decision threshold"},
                    "valueQuantity": [_score_qty(prov.threshold)],
                }
            ]
        }
    )
    software = _device(
        bundle,
        "device-medsight",
        "MedSight",
        prov.code_version or "unknown",
        None,
        "Decision-support software",
        **threshold_property,
    )
    devices = {
        role: _device(bundle, f"device-{role}", m.name, m.version, m.sha256, f"{role} model")
        for role, m in prov.models.items()
    }

    observations = [
        bundle.add("obs-anomaly-score", _score_observation(content, when, devices.get("vision"))),
        bundle.add("obs-risk-level", _risk_observation(content, when)),
        bundle.add("obs-fusion", _fusion_observation(content, when)),
        bundle.add("obs-text-findings", _text_observation(content, when, devices.get("nlp"))),
        bundle.add(
            "obs-conclusion",
            _observation(
                content,
                when,
                _concept(LOINC, "19005-8", "Radiology Imaging study [Impression] (narrative)"),
                valueString=content.conclusion,
            ),
        ),
        bundle.add(
            "obs-recommendations",
            _observation(
                content,
                when,
                _concept(LOINC, "18783-1", "Radiology Study recommendation (narrative)"),
                valueString=" ".join(content.recommendations),
            ),
        ),
    ]

    media_links: list[dict[str, Any]] = []
    if content.heatmap is not None and content.heatmap_media_type is not None:
        media = bundle.add(
            "media-heatmap",
            {
                "resourceType": "Media",
                "status": "completed",
                "type": _concept(MEDIA_TYPE, "image", "Image"),
                **_subject(content),
                "createdDateTime": when,
                "content": _attachment(
                    content.heatmap,
                    content.heatmap_media_type,
                    "Original (CLAHE) | anomaly heatmap | overlay",
                    when,
                ),
                **({"device": devices["vision"]} if "vision" in devices else {}),
            },
        )
        media_links.append({"comment": "Anomaly heatmap panels", "link": media})

    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "text": _narrative(content.conclusion, DISCLAIMER),
        "identifier": [{"system": SESSION_ID, "value": content.session_id}]
        + ([{"system": TASK_ID, "value": content.task_id}] if content.task_id else []),
        "status": REPORT_STATUS[content.status],
        "category": [_concept(V2_0074, "RAD", "Radiology")],
        "code": _concept(LOINC, "18748-4", "Diagnostic imaging study"),
        **_subject(content),
        "effectiveDateTime": effective,
        "issued": when,
        "result": observations,
        "conclusion": f"{content.conclusion} {DISCLAIMER}",
    }
    if media_links:
        report["media"] = media_links
    if pdf is not None:
        report["presentedForm"] = [
            _attachment(pdf, "application/pdf", "MedSight decision-support report", when)
        ]
    report_ref = bundle.add("diagnostic-report", report)

    image_entity: list[dict[str, Any]] = []
    if prov.image_sha256:
        image_entity.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": SHA256, "value": prov.image_sha256},
                    "display": "Input chest X-ray image (SHA-256)",
                },
            }
        )
    targets = [report_ref, *observations, *(m["link"] for m in media_links)]
    bundle.add(
        "provenance",
        {
            "resourceType": "Provenance",
            "target": targets,
            "recorded": when,
            "activity": _concept(DATA_OPERATION, "CREATE", "create"),
            "agent": [
                {"type": _concept(PARTICIPANT, "assembler", "Assembler"), "who": software},
                *(
                    {"type": _concept(PARTICIPANT, "performer", "Performer"), "who": ref}
                    for ref in devices.values()
                ),
            ],
            **({"entity": image_entity} if image_entity else {}),
        },
    )

    order = {"DiagnosticReport": 0, "Observation": 1, "Media": 2, "Device": 3, "Provenance": 4}
    bundle.entries.sort(key=lambda e: order[e["resource"]["resourceType"]])
    return {
        "resourceType": "Bundle",
        "id": bundle.rid("bundle"),
        "identifier": {"system": SESSION_ID, "value": content.session_id},
        "type": "collection",
        "timestamp": when,
        "entry": bundle.entries,
    }
