"""The orchestrator: runs the stages with independent failure and writes the result."""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.analysis.context import PipelineContext, PipelineInput
from backend.analysis.stages import Stage, StageSkipped
from backend.analysis.watch import CompletionWatch
from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import transaction
from backend.jobs.store import mark_job_done
from backend.storage import ObjectStorage

logger = logging.getLogger(__name__)

# A stage whose failure leaves nothing useful: the analysis is FAILED.
_ESSENTIAL = "input"


class Pipeline:
    """Runs stages 1-6 and summarises them (stage 7); also the queue's job runner."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        code_version: str,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        storage: ObjectStorage | None = None,
    ) -> None:
        self.stages = list(stages)
        self.code_version = code_version
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.progress: dict[str, tuple[str, float]] = {}
        self.watch = CompletionWatch()
        self.avg_total_ms = 250.0  # moving average of job time, for queue wait estimates

    async def run(self, inp: PipelineInput) -> PipelineContext:
        """Run every stage; a failure is recorded and later stages still run if they can."""
        ctx = PipelineContext(input=inp)
        started = time.perf_counter()
        total = len(self.stages)
        for index, stage in enumerate(self.stages):
            self.progress[inp.analysis_id] = (stage.name, index / (total + 1))
            missing = [name for name in stage.requires if getattr(ctx, name) is None]
            if missing:
                ctx.stage_status[stage.name] = "skipped"
                ctx.warn(f"{stage.name} stage skipped: needs {', '.join(missing)}")
                if stage.timing_key:
                    ctx.timings[stage.timing_key] = 0.0
                continue
            t0 = time.perf_counter()
            try:
                await stage.run(ctx)
                ctx.stage_status[stage.name] = "ok"
            except StageSkipped as skip:
                ctx.stage_status[stage.name] = "withheld" if skip.withheld else "skipped"
                if not skip.quiet:
                    ctx.warn(f"{stage.name}: {skip}")
            except Exception as exc:
                ctx.stage_status[stage.name] = "failed"
                ctx.warn(f"{stage.name} stage failed: {_safe_message(exc)}")
                logger.warning(
                    "stage failed",
                    exc_info=True,
                    extra={"stage": stage.name, "analysis_id": inp.analysis_id},
                )
            if stage.timing_key:
                ctx.timings[stage.timing_key] = round((time.perf_counter() - t0) * 1000, 2)
        # Stage 7: status.
        ctx.overall_status = _overall_status(ctx)
        ctx.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        self.avg_total_ms = 0.9 * self.avg_total_ms + 0.1 * ctx.timings["total_ms"]
        self.progress.pop(inp.analysis_id, None)
        return ctx

    def build_result(
        self, ctx: PipelineContext, analysis: Analysis | None = None
    ) -> dict[str, Any]:
        """The result JSON clients read (see the README's API section)."""
        vision = ctx.vision
        vision_out: dict[str, Any] | None = None
        if vision is not None:
            vision_out = {
                "anomaly_score": round(float(vision.anomaly_score), 2),
                "risk_level": str(vision.risk_level),
                "threshold": round(float(vision.threshold), 2),
                "components": vision.components,
                "heatmap_base64": (
                    base64.b64encode(ctx.heatmap_png).decode("ascii") if ctx.heatmap_png else None
                ),
                "heatmap_media_type": "image/jpeg" if ctx.heatmap_png else None,
                "top_regions": list(vision.top_regions),
                "model_confidence": round(float(vision.model_confidence), 4),
                "ood_score": round(float(vision.ood_score), 4),
            }
        models: dict[str, Any] = {}
        if ctx.vision_model is not None:
            models["vision"] = _model_info(ctx.vision_model)
        if ctx.nlp_model is not None:
            models["nlp"] = _model_info(ctx.nlp_model)
        timings = {
            key: float(ctx.timings.get(key, 0.0))
            for key in ("preprocess_ms", "vision_ms", "nlp_ms", "fusion_ms", "report_ms")
        }
        timings["total_ms"] = float(ctx.timings.get("total_ms", sum(timings.values())))
        return {
            "session_id": ctx.input.analysis_id,
            "patient_ref": ctx.input.patient_ref,
            "created_at": _iso(analysis.created_at) if analysis is not None else None,
            "completed_at": _iso(utcnow()),
            "overall_status": ctx.overall_status,
            "stages": dict(ctx.stage_status),
            "image": (
                {"format": ctx.image.format, "width": ctx.image.width, "height": ctx.image.height}
                if ctx.image is not None
                else None
            ),
            "vision": vision_out,
            "nlp": ctx.nlp.to_dict() if ctx.nlp is not None else None,
            "fusion": ctx.fusion.to_dict() if ctx.fusion is not None else None,
            "report_text": ctx.report_text or "",
            "timings": timings,
            "warnings": list(ctx.warnings),
            "provenance": {
                "image_sha256": ctx.input.image_sha256,
                "models": models,
                "threshold": vision_out["threshold"] if vision_out else None,
                "code_version": self.code_version,
            },
        }

    # --- the queue's job runner -----------------------------------------------------------
    async def run_job(self, job_id: str, analysis_id: str) -> None:
        """Load the analysis and its image, run the pipeline, persist the result.

        Marks the job done in the same transaction (see ``JobRunner``); raising leaves it to
        the queue to record a failed attempt.
        """
        assert self.sessionmaker is not None and self.storage is not None  # noqa: S101
        async with self.sessionmaker() as session:
            analysis = await session.scalar(select(Analysis).where(Analysis.id == analysis_id))
        if analysis is None or analysis.status in {"cancelled", "complete", "partial", "failed"}:
            async with transaction(self.sessionmaker) as session:
                await mark_job_done(session, job_id)
            return
        import anyio

        image_bytes = await anyio.to_thread.run_sync(self.storage.get, analysis.image_key)
        inp = PipelineInput(
            analysis_id=analysis.id,
            image_bytes=image_bytes,
            image_sha256=analysis.image_sha256,
            symptoms=analysis.symptoms,
            patient_ref=analysis.patient_ref,
        )
        ctx = await self.run(inp)
        result = json_safe(self.build_result(ctx, analysis))
        result["task_id"] = job_id
        async with transaction(self.sessionmaker) as session:
            await session.execute(
                update(Analysis)
                .where(Analysis.id == analysis_id)
                .values(
                    status=str(ctx.overall_status).lower(),
                    overall_status=ctx.overall_status,
                    stage="done",
                    progress=1.0,
                    result=result,
                    anomaly_score=result["vision"]["anomaly_score"] if result["vision"] else None,
                    risk_level=_final_risk(result),
                    error="; ".join(ctx.warnings)[:2000]
                    if ctx.overall_status == "FAILED"
                    else None,
                    completed_at=utcnow(),
                )
            )
            # The job ends in the transaction that stores its result: one commit, and no
            # window in which a finished analysis still has a running job.
            await mark_job_done(session, job_id)
        self.watch.notify(analysis_id)


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not JSON; PostgreSQL refuses them) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _overall_status(ctx: PipelineContext) -> str:
    if ctx.stage_status.get(_ESSENTIAL) != "ok":
        return "FAILED"
    if ctx.vision is None and ctx.nlp is None:
        return "FAILED"
    bad = {"failed", "withheld"}
    if any(status in bad for status in ctx.stage_status.values()):
        return "PARTIAL"
    return "COMPLETE"


def _final_risk(result: dict[str, Any]) -> str | None:
    if result.get("fusion"):
        return str(result["fusion"]["final_risk"])
    if result.get("vision"):
        return str(result["vision"]["risk_level"])
    return None


def _model_info(model: Any) -> dict[str, Any]:
    metadata = getattr(model, "metadata", {}) or {}
    return {
        "name": str(metadata.get("name") or type(model).__name__),
        "version": str(getattr(model, "version", metadata.get("version", "unknown"))),
        "sha256": getattr(model, "weights_sha256", None) or metadata.get("weights_sha256"),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _safe_message(exc: Exception) -> str:
    """A short message without paths or stack frames (it reaches clients as a warning)."""
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    message = message.splitlines()[0][:200]
    if "/" in message and ("File " in message or ".py" in message):
        return type(exc).__name__
    return message
