"""The analysis domain's parts as route dependencies."""

from __future__ import annotations

from typing import Annotated

from backend.analysis.result_cache import ResultCache
from backend.analysis.runtime import AnalysisRuntime
from backend.web.state import provide

RuntimeDep = Annotated[AnalysisRuntime, provide(AnalysisRuntime)]
ResultCacheDep = Annotated[ResultCache, provide(ResultCache)]
