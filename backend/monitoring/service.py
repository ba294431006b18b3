"""The drift monitor: records each finished analysis, checks the window, exports and logs it.

Every finished analysis that reached the vision model leaves one `DriftObservation` (its score
and input statistics, keyed by the reference in force: the shipped one or a site calibration).
The check compares the last DRIFT_WINDOW scored chest X-rays with that reference (see
`backend.monitoring.drift`). Observations are taken from the pipeline's context as a run ends and
written once its result is committed (the pipeline's finish listeners), in the process that ran
it: the API with the local queue, each worker with Celery. Checks read the shared database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.models import DriftObservation
from backend.db.session import transaction
from backend.monitoring.drift import FEATURES, DriftThresholds, drift_test
from backend.monitoring.schemas import (
    DriftFeature,
    DriftReference,
    DriftReport,
    DriftThresholdsOut,
)
from backend.observability import Metrics


class _Input(Protocol):
    @property
    def analysis_id(self) -> str: ...


class PipelineContext(Protocol):
    """What the monitor reads of the pipeline's context (backend.analysis.context)."""

    @property
    def input(self) -> _Input: ...

    @property
    def vision_raw(self) -> Any: ...  # backend.ml.vision.VisionResult | None

    @property
    def calibration(self) -> dict[str, object] | None: ...

    @property
    def models(self) -> Any: ...  # dict[str, ModelInfo]


logger = logging.getLogger(__name__)

# Observations of runs whose result is not committed yet; bounded (a run that never commits,
# e.g. `medsight analyze`, must not grow it).
_MAX_PENDING = 1000


@dataclass(frozen=True)
class Observation:
    analysis_id: str
    reference_id: str
    model_version: str
    is_chest_xray: bool
    outside_population: bool
    score: float | None
    feature_distance: float
    mean_intensity: float
    std_intensity: float


def observation_from(ctx: PipelineContext) -> Observation | None:
    """The drift observation of a finished run; None when the vision model did not score it."""
    raw = ctx.vision_raw
    info = ctx.calibration or {}
    if raw is None or not info.get("id"):
        return None
    stats = raw.input_stats
    model = ctx.models.get("vision")
    return Observation(
        analysis_id=ctx.input.analysis_id,
        reference_id=str(info["id"])[:64],
        model_version=(model.version if model is not None else "unknown")[:32],
        is_chest_xray=raw.is_chest_xray,
        outside_population=bool(raw.outside_population),
        score=float(raw.anomaly_score) if raw.is_chest_xray else None,
        feature_distance=float(stats.get("feature_distance", raw.ood_score)),
        mean_intensity=float(stats.get("mean_intensity", float("nan"))),
        std_intensity=float(stats.get("std_intensity", float("nan"))),
    )


class DriftMonitor:
    """Records observations and checks the drift window (one per process)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.metrics = metrics
        self.thresholds = DriftThresholds()
        self.last_status: str | None = None
        self._pending: OrderedDict[str, Observation] = OrderedDict()
        self._writes: set[asyncio.Task[None]] = set()
        self._reference: tuple[str, dict[str, Any] | None] | None = None

    # --- recording ------------------------------------------------------------------------
    def observe(self, ctx: PipelineContext) -> None:
        """Pipeline observer: keep the run's observation until its result is committed."""
        obs = observation_from(ctx)
        if obs is None:
            return
        self._pending[obs.analysis_id] = obs
        self._pending.move_to_end(obs.analysis_id)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)

    def finished(self, analysis_id: str) -> None:
        """Pipeline finish listener: write the committed run's observation."""
        obs = self._pending.pop(analysis_id, None)
        if obs is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.record(obs), name=f"drift-observation-{analysis_id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def record(self, obs: Observation) -> None:
        try:
            async with transaction(self.sessionmaker) as session:
                session.add(DriftObservation(**obs.__dict__))
        except IntegrityError:
            # Already recorded (a re-run) or the analysis was deleted meanwhile.
            logger.debug("drift observation not stored", extra={"analysis_id": obs.analysis_id})
        except Exception:  # noqa: BLE001 - monitoring never fails an analysis
            logger.warning("drift observation not stored", exc_info=True)

    async def flush(self) -> None:
        """Wait for the observations being written (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # --- checking -------------------------------------------------------------------------
    async def reference(self) -> tuple[str, dict[str, Any] | None]:
        """(reference id, reference population) of the configured model and calibration."""
        if self._reference is None:
            from backend.ml.vision.population import resolve_reference

            model_dir: Path | None = self.settings.vision_model_dir
            self._reference = await anyio.to_thread.run_sync(
                resolve_reference, model_dir, self.settings.vision_calibration
            )
        return self._reference

    async def check(self, session: AsyncSession) -> DriftReport:
        """The drift status of the current window; updates the gauges, logs a change."""
        rid, ref = await self.reference()
        window = self.settings.drift_window
        rows = list(
            (
                await session.scalars(
                    select(DriftObservation)
                    .where(
                        DriftObservation.reference_id == rid,
                        DriftObservation.is_chest_xray.is_(True),
                        DriftObservation.score.is_not(None),
                    )
                    .order_by(DriftObservation.id.desc())
                    .limit(window)
                )
            ).all()
        )
        refused = 0
        if rows:
            refused = int(
                await session.scalar(
                    select(func.count(DriftObservation.id)).where(
                        DriftObservation.reference_id == rid,
                        DriftObservation.is_chest_xray.is_(False),
                        DriftObservation.id >= rows[-1].id,
                    )
                )
                or 0
            )
        report = self._evaluate(rid, ref, rows, refused)
        self._publish(report)
        return report

    def _evaluate(
        self,
        rid: str,
        ref: dict[str, Any] | None,
        rows: list[DriftObservation],
        refused: int,
    ) -> DriftReport:
        window, min_n = self.settings.drift_window, self.settings.drift_min_n
        n = len(rows)
        base: dict[str, Any] = {
            "n": n,
            "window": window,
            "min_n": min_n,
            "thresholds": DriftThresholdsOut(
                warning=self.thresholds.warning, drift=self.thresholds.drift
            ),
            "outside_population": (
                round(sum(r.outside_population for r in rows) / n, 4) if n else None
            ),
            "not_chest_xray": refused,
            "checked_at": utcnow(),
            "reference": _describe_reference(rid, ref),
        }
        if ref is None:
            return DriftReport(
                status="ok",
                statistic=None,
                detail="the vision model ships no reference population: drift is not tested",
                **base,
            )
        if n < min_n:
            return DriftReport(
                status="ok",
                statistic=None,
                detail=f"{n} scored analyses since this reference came into use; the test "
                f"needs DRIFT_MIN_N = {min_n}",
                **base,
            )
        values = {f: [float(getattr(r, f)) for r in rows] for f in FEATURES}
        result = drift_test(values, ref["features"], self.thresholds)
        return DriftReport(
            status=result.status,
            statistic=result.statistic,
            normal_fraction=result.normal_fraction,
            features={
                f: DriftFeature(
                    statistic=result.per_feature[f],
                    window_mean=result.window_means[f],
                    reference_mean=result.reference_means[f],
                )
                for f in result.per_feature
            },
            detail=_detail(result.status, result.per_feature, self.thresholds),
            **base,
        )

    def _publish(self, report: DriftReport) -> None:
        if self.metrics is not None:
            self.metrics.set_drift(
                report.status, report.statistic, report.n, report.outside_population
            )
        previous, self.last_status = self.last_status, report.status
        if previous is not None and previous != report.status:
            log = logger.info if report.status == "ok" else logger.warning
            log(
                "drift status changed",
                extra={
                    "from": previous,
                    "to": report.status,
                    "statistic": report.statistic,
                    "n": report.n,
                    "reference": report.reference.id if report.reference else None,
                },
            )

    async def check_now(self) -> DriftReport | None:
        """The scheduler's job: check with its own session; never raises."""
        try:
            async with self.sessionmaker() as session:
                return await self.check(session)
        except Exception:  # noqa: BLE001 - the next check may succeed
            logger.warning("drift check failed", exc_info=True)
            return None


def _describe_reference(rid: str, ref: dict[str, Any] | None) -> DriftReference | None:
    if ref is None:
        return None
    feats = ref.get("features", {}).get("score", {})
    return DriftReference(
        id=rid,
        kind="site" if rid.startswith("site:") else "shipped",
        source=str(ref.get("source", "")),
        n_normal=len(feats.get("normal", [])),
        n_abnormal=len(feats.get("abnormal", [])),
    )


def _detail(status: str, per_feature: dict[str, float], thresholds: DriftThresholds) -> str:
    if status == "ok":
        return "the recent analyses look like the reference population"
    worst = sorted(per_feature, key=lambda f: per_feature[f], reverse=True)
    moved = [f for f in worst if per_feature[f] >= thresholds.warning] or worst[:1]
    return (
        "the recent analyses differ from the reference population in "
        + ", ".join(f.replace("_", " ") for f in moved)
        + "; see docs/monitoring.md (how to act)"
    )
