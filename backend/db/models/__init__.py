"""All ORM classes, imported here so Alembic sees one metadata."""

from backend.db.models.analysis import Analysis, Job
from backend.db.models.audit import AuditEvent
from backend.db.models.auth import LoginThrottle, OAuthCode, OAuthState, RefreshToken
from backend.db.models.chat import ChatMessage
from backend.db.models.monitoring import DriftObservation
from backend.db.models.pacs import PacsDelivery
from backend.db.models.user import ApiKey, User

__all__ = [
    "Analysis",
    "ApiKey",
    "AuditEvent",
    "ChatMessage",
    "DriftObservation",
    "Job",
    "LoginThrottle",
    "OAuthCode",
    "OAuthState",
    "PacsDelivery",
    "RefreshToken",
    "User",
]
