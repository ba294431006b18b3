"""The orchestrator: runs the stages with independent failure and writes the result."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.analysis.context import PipelineContext, PipelineInput
from backend.analysis.feed import StageEvent, StageFeed
from backend.analysis.stages import Stage, StageSkipped
from backend.analysis.watch import CompletionWatch
from backend.contract import (
    FINAL_STATUSES,
    AnalysisResult,
    ImageInfo,
    OverallStatus,
    Provenance,
    StageOutcome,
    Timings,
)
from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import transaction
from backend.jobs.store import mark_job_done
from backend.observability import Metrics
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
        # Stage start/end events of the runs in this process (GET /analyze/events/{id}).
        self.feed = StageFeed()
        self.avg_total_ms = 250.0  # moving average of job time, for queue wait estimates
        # Called with every finished context (metrics, drift monitoring); never fail a job.
        self.observers: list[Callable[[PipelineContext], None]] = []
        # Called with the analysis id once its result is committed (e.g. the PACS sender).
        self.finish_listeners: list[Callable[[str], None]] = []

    def observe(self, observer: Callable[[PipelineContext], None]) -> None:
        """Call `observer(ctx)` after every run (e.g. metrics: `observe_with(metrics)`)."""
        self.observers.append(observer)

    def on_finish(self, listener: Callable[[str], None]) -> None:
        """Call `listener(analysis_id)` after each result this process commits."""
        self.finish_listeners.append(listener)

    async def run(self, inp: PipelineInput) -> PipelineContext:
        """Run every stage; a failure is recorded and later stages still run if they can."""
        ctx = PipelineContext(input=inp)
        started = time.perf_counter()
        total = len(self.stages)
        attempt = self.feed.begin(inp.analysis_id)
        for index, stage in enumerate(self.stages):
            self.progress[inp.analysis_id] = (stage.name, index / (total + 1))
            event = StageEvent(inp.analysis_id, stage.name, "start", index, total, attempt)
            self.feed.publish(event)
            t0 = time.perf_counter()
            await self._run_stage(stage, ctx)
            self.feed.publish(
                dataclasses.replace(
                    event,
                    phase="end",
                    outcome=ctx.stage_status[stage.name],
                    elapsed_ms=round((time.perf_counter() - t0) * 1000, 2),
                )
            )
        # Stage 7: status.
        ctx.overall_status = _overall_status(ctx)
        ctx.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        self.avg_total_ms = 0.9 * self.avg_total_ms + 0.1 * ctx.timings["total_ms"]
        self.progress.pop(inp.analysis_id, None)
        for observer in self.observers:
            try:
                observer(ctx)
            except Exception:  # noqa: BLE001 - an observer never fails an analysis
                logger.warning("pipeline observer failed", exc_info=True)
        return ctx

    async def _run_stage(self, stage: Stage, ctx: PipelineContext) -> None:
        """Run one stage, recording its outcome, timing and any warning in `ctx`."""
        missing = [name for name in stage.requires if getattr(ctx, name) is None]
        if missing:
            ctx.stage_status[stage.name] = StageOutcome.SKIPPED
            ctx.warn(f"{stage.name} stage skipped: needs {', '.join(missing)}")
            if stage.timing_key:
                ctx.timings[stage.timing_key] = 0.0
            return
        t0 = time.perf_counter()
        try:
            await stage.run(ctx)
            ctx.stage_status[stage.name] = StageOutcome.OK
        except StageSkipped as skip:
            ctx.stage_status[stage.name] = (
                StageOutcome.WITHHELD if skip.withheld else StageOutcome.SKIPPED
            )
            if not skip.quiet:
                ctx.warn(f"{stage.name}: {skip}")
        except Exception as exc:
            ctx.stage_status[stage.name] = StageOutcome.FAILED
            ctx.warn(f"{stage.name} stage failed: {_safe_message(exc)}")
            logger.warning(
                "stage failed",
                exc_info=True,
                extra={"stage": stage.name, "analysis_id": ctx.input.analysis_id},
            )
        if stage.timing_key:
            ctx.timings[stage.timing_key] = round((time.perf_counter() - t0) * 1000, 2)

    def build_result(
        self, ctx: PipelineContext, analysis: Analysis | None = None, task_id: str = ""
    ) -> AnalysisResult:
        """Stage 7's summary as the contract's result (see backend/contract)."""
        assert ctx.overall_status is not None  # noqa: S101 - set by run()
        keys = ("preprocess_ms", "vision_ms", "nlp_ms", "fusion_ms", "report_ms")
        timings = {key: float(ctx.timings.get(key, 0.0)) for key in keys}
        timings["total_ms"] = float(ctx.timings.get("total_ms", sum(timings.values())))
        return AnalysisResult(
            session_id=ctx.input.analysis_id,
            task_id=task_id,
            patient_ref=ctx.input.patient_ref,
            created_at=analysis.created_at if analysis is not None else None,
            completed_at=utcnow(),
            overall_status=ctx.overall_status,
            stages=dict(ctx.stage_status),
            image=(
                ImageInfo(format=ctx.image.format, width=ctx.image.width, height=ctx.image.height)
                if ctx.image is not None
                else None
            ),
            vision=ctx.vision,
            nlp=ctx.nlp,
            fusion=ctx.fusion,
            report_text=ctx.report_text or "",
            timings=Timings(**timings),
            warnings=list(ctx.warnings),
            provenance=Provenance(
                image_sha256=ctx.input.image_sha256,
                models=dict(ctx.models),
                threshold=ctx.vision.threshold if ctx.vision is not None else None,
                code_version=self.code_version,
                calibration=ctx.calibration,
            ),
        )

    # --- the queue's job runner -----------------------------------------------------------
    async def run_job(self, job_id: str, analysis_id: str) -> None:
        """Load the analysis and its image, run the pipeline, persist the result.

        Marks the job done in the same transaction (see ``JobRunner``); raising leaves it to
        the queue to record a failed attempt.
        """
        assert self.sessionmaker is not None and self.storage is not None  # noqa: S101
        async with self.sessionmaker() as session:
            analysis = await session.scalar(select(Analysis).where(Analysis.id == analysis_id))
        if analysis is None or analysis.status in FINAL_STATUSES:
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
        result = self.build_result(ctx, analysis, task_id=job_id)
        final_risk = result.final_risk
        async with transaction(self.sessionmaker) as session:
            await session.execute(
                update(Analysis)
                .where(Analysis.id == analysis_id)
                .values(
                    status=result.overall_status.analysis_status.value,
                    overall_status=result.overall_status.value,
                    stage="done",
                    progress=1.0,
                    result=json_safe(result.model_dump(mode="json")),
                    anomaly_score=result.anomaly_score,
                    risk_level=final_risk.value if final_risk is not None else None,
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
        self.feed.finished(analysis_id)
        for listener in self.finish_listeners:
            try:
                listener(analysis_id)
            except Exception:  # noqa: BLE001 - a listener never fails a committed job
                logger.warning("finish listener failed", exc_info=True)


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not JSON; PostgreSQL refuses them) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _overall_status(ctx: PipelineContext) -> OverallStatus:
    if ctx.stage_status.get(_ESSENTIAL) is not StageOutcome.OK:
        return OverallStatus.FAILED
    if ctx.vision is None and ctx.nlp is None:
        return OverallStatus.FAILED
    bad = {StageOutcome.FAILED, StageOutcome.WITHHELD}
    if any(status in bad for status in ctx.stage_status.values()):
        return OverallStatus.PARTIAL
    return OverallStatus.COMPLETE


def _safe_message(exc: Exception) -> str:
    """A short message without paths or stack frames (it reaches clients as a warning)."""
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    message = message.splitlines()[0][:200]
    if "/" in message and ("File " in message or ".py" in message):
        return type(exc).__name__
    return message


def metrics_observer(metrics: Metrics) -> Callable[[PipelineContext], None]:
    """Record each run's stage timings and outcome in `metrics`."""

    def observe(ctx: PipelineContext) -> None:
        metrics.observe_timings(
            ctx.timings,
            {name: outcome.value for name, outcome in ctx.stage_status.items()},
            ctx.overall_status.value if ctx.overall_status is not None else None,
        )

    return observe
