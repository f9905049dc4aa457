from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.cases.workflow import Stage
from app.db.base import Base, IdMixin, TimestampMixin, utcnow

Sealed = LargeBinary

STAGES = tuple(s.value for s in Stage)
_STAGE_CHECK = "stage IN (" + ", ".join(f"'{s}'" for s in STAGES) + ")"


class Case(IdMixin, TimestampMixin, Base):
    """One victim's journey through the mechanism.

    Sealed columns hold personal facts. The plain columns are what the workflow, deadlines
    and coordinator statistics need; they are coarse (age band, not birth date; country,
    not place) and hold no identity.
    """

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_STAGE_CHECK, name="stage_valid"),
        Index("ix_cases_agency_stage", "owning_agency_id", "stage"),
    )

    reference: Mapped[str] = mapped_column(String(20), unique=True)
    victim_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("victims.id"), index=True)
    owning_agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    country_profile: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40), default="detected")
    previous_stage: Mapped[str | None] = mapped_column(String(40))
    stage_entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
    classification: Mapped[str] = mapped_column(String(20), default="undetermined")

    # Pseudonymised statistical projection (coordinator dimensions).
    age_band: Mapped[str] = mapped_column(String(10), default="unknown")
    sex: Mapped[str] = mapped_column(String(10), default="unknown")
    nationality: Mapped[str | None] = mapped_column(String(2))
    exploitation_forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    detecting_org_type: Mapped[str] = mapped_column(String(30), default="other")
    detected_on: Mapped[date] = mapped_column()
    region: Mapped[str | None] = mapped_column(String(100))
    indicator_count: Mapped[int] = mapped_column(default=0)

    # Facts the workflow guards read (when, by whom; content lives sealed or in audit).
    # Consents are read from the consents table so a withdrawal takes effect at once.
    episode_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    guardian_requested_at: Mapped[datetime | None] = mapped_column()
    guardian_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    guardian_assigned_at: Mapped[datetime | None] = mapped_column()
    best_interests_assessed_at: Mapped[datetime | None] = mapped_column()
    support_plan_at: Mapped[datetime | None] = mapped_column()
    pre_return_risk_assessed_at: Mapped[datetime | None] = mapped_column()
    receiving_organisation_confirmed_at: Mapped[datetime | None] = mapped_column()
    reintegration_plan_at: Mapped[datetime | None] = mapped_column()
    guardian_cosigned_at: Mapped[datetime | None] = mapped_column()
    stage_before_return: Mapped[str | None] = mapped_column(String(40))
    negative_decision_proposed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    negative_decision_proposed_in: Mapped[str | None] = mapped_column(String(40))
    closure_reason: Mapped[str | None] = mapped_column(String(40))

    # Milestones (a cache of the timeline, written in the same transaction as the event).
    referred_at: Mapped[datetime | None] = mapped_column()
    reasonable_grounds_at: Mapped[datetime | None] = mapped_column()
    first_support_contact_at: Mapped[datetime | None] = mapped_column()
    identification_decided_at: Mapped[datetime | None] = mapped_column()
    identification_positive: Mapped[bool | None] = mapped_column()
    not_identified_at: Mapped[datetime | None] = mapped_column()
    returned_at: Mapped[datetime | None] = mapped_column()
    last_contact_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)

    # Parallel tracks: they set a legal hold, never gate assistance.
    residence_permit_status: Mapped[str] = mapped_column(String(20), default="none")
    residence_permit_valid_from: Mapped[date | None] = mapped_column()
    residence_permit_valid_until: Mapped[date | None] = mapped_column()
    proceedings_status: Mapped[str] = mapped_column(String(20), default="none")
    compensation_claimed: Mapped[bool] = mapped_column(default=False)

    exploitation_acts: Mapped[bytes | None] = mapped_column(Sealed)
    exploitation_means: Mapped[bytes | None] = mapped_column(Sealed)
    exploitation_form_details: Mapped[bytes | None] = mapped_column(Sealed)
    labour_sector: Mapped[bytes | None] = mapped_column(Sealed)
    online_exploitation: Mapped[bytes | None] = mapped_column(Sealed)
    countries_of_recruitment: Mapped[bytes | None] = mapped_column(Sealed)
    countries_of_transit: Mapped[bytes | None] = mapped_column(Sealed)
    countries_of_exploitation: Mapped[bytes | None] = mapped_column(Sealed)
    exploitation_start: Mapped[bytes | None] = mapped_column(Sealed)
    exploitation_end: Mapped[bytes | None] = mapped_column(Sealed)
    detection_place: Mapped[bytes | None] = mapped_column(Sealed)
    indicators: Mapped[bytes | None] = mapped_column(Sealed)
    needs_assessment: Mapped[bytes | None] = mapped_column(Sealed)
    support_plan: Mapped[bytes | None] = mapped_column(Sealed)
    statement_summary: Mapped[bytes | None] = mapped_column(Sealed)


class CaseParticipant(IdMixin, Base):
    """A referral: another agency granted access to a case through a named role."""

    __tablename__ = "case_participants"
    __table_args__ = (Index("ix_case_participants_agency", "agency_id", "case_id"),)

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    access_role: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(200))
    granted_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Consent(IdMixin, Base):
    """A consent record: purpose, recipient, scope (field groups), validity, withdrawal."""

    __tablename__ = "consents"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    recipient_agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agencies.id"))
    recipient_description: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    given_on: Mapped[date] = mapped_column()
    expires_on: Mapped[date | None] = mapped_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column()
    recorded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseNote(IdMixin, Base):
    __tablename__ = "case_notes"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(30), default="note")  # note, assistance, contact
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    body: Mapped[bytes | None] = mapped_column(Sealed)


class OutboxMessage(IdMixin, Base):
    """Side effects (alerts, cross-border sends) committed with the change that causes them."""

    __tablename__ = "outbox"

    topic: Mapped[str] = mapped_column(String(60), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
