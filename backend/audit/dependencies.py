"""The audit spool as a route dependency."""

from __future__ import annotations

from typing import Annotated

from backend.audit.spool import AuditSpool
from backend.web.state import provide

AuditSpoolDep = Annotated[AuditSpool, provide(AuditSpool)]
