"""Break-glass grants: one case, 60 minutes, coded reason, fresh authentication, reviewed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.audit import service as audit
from app.auth.actor import Actor
from app.db.base import Base, IdMixin, utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound

if TYPE_CHECKING:
    from app.auth.models import User
    from app.context import AppContext

GRANT_MINUTES = 60
REASON_CODES = (
    "imminent_risk_to_life",
    "missing_child",
    "medical_emergency",
    "court_order",
    "safeguarding",
)


class BreakGlassGrant(IdMixin, Base):
    __tablename__ = "break_glass_grants"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    reason_code: Mapped[str] = mapped_column(String(40))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    reviewed_at: Mapped[datetime | None] = mapped_column()
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    review_outcome: Mapped[str | None] = mapped_column(String(20))


def active_grants(session: Session, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
    now = utcnow()
    stmt = select(BreakGlassGrant.case_id).where(
        BreakGlassGrant.user_id == user_id, BreakGlassGrant.expires_at > now
    )
    return frozenset(session.scalars(stmt))


# -- service -----------------------------------------------------------------------------------
def request_access(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    user: User,
    case_id: uuid.UUID,
    *,
    reason_code: str,
    justification: str,
    password: str,
    totp_code: str | None,
) -> BreakGlassGrant:
    """Emergency access to one case for 60 minutes: coded reason, justification, fresh login.

    The justification is sealed with the case; the coordinator is alerted through the outbox
    and the grant waits in the review queue.
    """
    from app.auth.passwords import verify_password
    from app.auth.totp import verify_code
    from app.cases.models import Case, CaseNote, OutboxMessage
    from app.cases.service import require

    require(ctx, actor, "break_glass.request")
    if reason_code not in REASON_CODES:
        raise InvalidInput(f"choose a reason code: {', '.join(REASON_CODES)}")
    valid, _ = verify_password(password, user.password_hash)
    needs_totp = ctx.policy.role(user.role).mfa_required or user.totp_confirmed_at is not None
    if not valid or (needs_totp and not verify_code(ctx, user, totp_code or "")):
        audit.record(
            session, actor, "break_glass_reauth_failed", entity_type="case", entity_id=case_id
        )
        raise Forbidden(
            "Re-authentication failed. Enter your password (and current code) again.",
            code="reauth_failed",
        )
    from app.db.rls import system_scope

    with system_scope(session, restore=actor, policy=ctx.policy):
        case = session.get(Case, case_id)
    if case is None:
        audit.record(
            session,
            actor,
            "access_denied",
            entity_type="case",
            entity_id=case_id,
            details={"reason": "break_glass_missing"},
        )
        raise NotFound(audited=True)
    now = utcnow()
    grant = BreakGlassGrant(
        user_id=user.id,
        case_id=case.id,
        reason_code=reason_code,
        granted_at=now,
        expires_at=now + timedelta(minutes=GRANT_MINUTES),
    )
    session.add(grant)
    codec = ctx.keys.codec_for(session, case.victim_id)
    note = CaseNote(case_id=case.id, author_id=user.id, kind="break_glass", created_at=now)
    note.body = codec.seal("case_notes", "body", note.id, justification)
    session.add(note)
    session.add(
        OutboxMessage(
            topic="alert.break_glass",
            created_at=now,
            payload={
                "grant_id": str(grant.id),
                "case_reference": case.reference,
                "reason_code": reason_code,
                "agency_id": str(actor.agency_id),
                "expires_at": grant.expires_at.isoformat(),
            },
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "break_glass",
        case_id=case.id,
        entity_type="break_glass_grant",
        entity_id=grant.id,
        details={
            "reason_code": reason_code,
            "minutes": GRANT_MINUTES,
            "justification_note_id": str(note.id),
        },
    )
    return grant


def pending_reviews(session: Session) -> list[BreakGlassGrant]:
    stmt = (
        select(BreakGlassGrant)
        .where(BreakGlassGrant.reviewed_at.is_(None))
        .order_by(BreakGlassGrant.granted_at)
    )
    return list(session.scalars(stmt))


def review(
    session: Session, ctx: AppContext, actor: Actor, grant_id: uuid.UUID, outcome: str
) -> BreakGlassGrant:
    """Close a grant's review: justified, or unjustified (which should lead to follow-up)."""
    from app.cases.service import require

    require(ctx, actor, "break_glass.review")
    if outcome not in ("justified", "unjustified"):
        raise InvalidInput("outcome must be justified or unjustified")
    grant = session.get(BreakGlassGrant, grant_id)
    if grant is None:
        raise NotFound("no break-glass grant with that id")
    if grant.reviewed_at is not None:
        raise Conflict("this grant was already reviewed")
    grant.reviewed_at, grant.reviewed_by, grant.review_outcome = utcnow(), actor.user_id, outcome
    if outcome == "unjustified":
        grant.expires_at = min(grant.expires_at, utcnow())  # ends at once if still running
    audit.record(
        session,
        actor,
        "break_glass_reviewed",
        case_id=grant.case_id,
        entity_type="break_glass_grant",
        entity_id=grant.id,
        details={"outcome": outcome},
    )
    return grant
