"""Read stored results of every schema version as today's `AnalysisResult`.

Schema 1 (before 2026-12) differs from 2 in three names the seed's clients read: risk bands said
MODERATE (now MEDIUM), differential items named the condition `condition` (now `disease`), and
the heatmap was bare base64 (now a data URI). Rows are upgraded when read, never rewritten.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from backend.contract.heatmap import media_type_of
from backend.contract.result import SCHEMA_VERSION, AnalysisResult


def load_result(stored: Mapping[str, Any], **defaults: Any) -> AnalysisResult:
    """Validate a stored result, upgrading older schema versions first.

    `defaults` fill top-level fields the stored result lacks or leaves empty (e.g. its times).
    """
    version = stored.get("schema_version", 1)
    data = dict(stored) if version == SCHEMA_VERSION else upgrade_v1(stored)
    for key, value in defaults.items():
        if data.get(key) is None:
            data[key] = value
    return AnalysisResult.model_validate(data)


def upgrade_v1(stored: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(stored)
    data["schema_version"] = SCHEMA_VERSION
    vision = data.get("vision")
    if isinstance(vision, Mapping):
        vision = dict(vision)
        encoded = vision.get("heatmap_base64")
        if isinstance(encoded, str) and encoded and not encoded.startswith("data:"):
            vision["heatmap_base64"] = _bare_to_data_uri(encoded)
        data["vision"] = vision
    nlp = data.get("nlp")
    if isinstance(nlp, Mapping):
        nlp = dict(nlp)
        nlp["differential"] = [
            {"disease": item.get("condition"), **item} if "disease" not in item else item
            for item in nlp.get("differential") or []
            if isinstance(item, Mapping)
        ]
        data["nlp"] = nlp
    if data.get("task_id") is None:
        data["task_id"] = ""
    return data


def _bare_to_data_uri(encoded: str) -> str | None:
    """Schema 1 stored bare base64 of a JPEG (PNG in the earliest rows); None if it is neither."""
    try:
        head = base64.b64decode(encoded[:16], validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = media_type_of(head)
    return f"data:{kind};base64,{encoded}" if kind else None
