"""Import every model module so metadata is complete (alembic, tests)."""

from app.agencies.models import Agency
from app.audit.models import AuditChainHead, AuditEvent
from app.auth.break_glass import BreakGlassGrant
from app.auth.models import LoginThrottle, User, UserSession
from app.cases.models import Case, CaseNote, CaseParticipant, Consent, OutboxMessage
from app.crypto.models import BlindIndexEntry, DataKey
from app.db.base import Base
from app.operations.models import IdempotencyRecord  # noqa: F401 (registers its table)
from app.transnational import models as transnational_models  # noqa: F401 (TRM tables)
from app.victims.models import Victim

__all__ = [
    "Agency",
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "BlindIndexEntry",
    "BreakGlassGrant",
    "Case",
    "CaseNote",
    "CaseParticipant",
    "Consent",
    "DataKey",
    "LoginThrottle",
    "OutboxMessage",
    "User",
    "UserSession",
    "Victim",
]
