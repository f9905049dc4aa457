"""API inputs and outputs of the transnational screens and JSON API."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator

from app.common.schemas import Email, LongText, Name, PastDate, Phone, ShortText, StrictInput
from app.transnational.vocab import (
    FollowUpStatus,
    KeyRevocationReason,
    PackagePurpose,
    ReclassificationReason,
    RejectionReason,
    RiskLevel,
    StatusCode,
    TravelMode,
)
from app.vocab import CountryCode, LanguageCode, TraffickingClassification

_UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


def _uuid_as_documented(value: Any) -> Any:
    """Only the hyphenated form the schema documents (``format: uuid``); pydantic alone
    would also take 32 bare hex digits, braces or a ``urn:uuid:`` prefix."""
    if isinstance(value, str) and not _UUID_TEXT.match(value):
        raise ValueError(
            "must be a UUID in its usual form, e.g. 0190f3a2-7c1e-7a3b-9f00-1c2d3e4f5a6b"
        )
    return value


Uuid = Annotated[uuid.UUID, BeforeValidator(_uuid_as_documented)]


# -- directory -------------------------------------------------------------------------------
class LocalInstanceIn(StrictInput):
    instance_id: Name = Field(pattern=r"^[A-Za-z0-9:/._\-]+$")
    country: CountryCode
    institution: ShortText
    focal_point_agency_id: Uuid


class LocalInstanceOut(BaseModel):
    instance_id: str
    country: str
    institution: str
    focal_point_agency_id: uuid.UUID
    signing_kid: str
    encryption_kid: str
    updated_at: datetime


class ContactIn(StrictInput):
    role_title: Name
    email: Email
    phone: Phone | None = None
    rank: Literal["primary", "deputy"]
    out_of_hours: bool = False
    languages: list[LanguageCode] = Field(default_factory=list, max_length=10)


class PartnerIn(StrictInput):
    country: CountryCode
    institution: ShortText
    instance_id: Name = Field(pattern=r"^[A-Za-z0-9:/._\-]+$")
    base_url: ShortText
    working_languages: list[LanguageCode] = Field(min_length=1, max_length=10)
    last_verified_on: PastDate | None = None
    contacts: list[ContactIn] = Field(min_length=2, max_length=20)


class PartnerPatch(StrictInput):
    base_url: ShortText | None = None
    working_languages: list[LanguageCode] | None = Field(default=None, max_length=10)
    last_verified_on: PastDate | None = None
    contacts: list[ContactIn] | None = Field(default=None, min_length=2, max_length=20)
    status: Literal["active", "suspended"] | None = None


class ContactOut(BaseModel):
    role_title: str
    email: str
    phone: str | None
    rank: str
    out_of_hours: bool
    languages: list[str]


class KeyOut(BaseModel):
    use: str
    kid: str
    status: str
    pinned_via: str
    pinned_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None
    revocation_reason: str | None


class PartnerOut(BaseModel):
    id: uuid.UUID
    agency_id: uuid.UUID
    country: str
    institution: str
    instance_id: str
    base_url: str
    working_languages: list[str]
    last_verified_on: date | None
    status: str
    contacts: list[ContactOut]
    keys: list[KeyOut]


class KeyPinIn(StrictInput):
    use: Literal["sig", "enc"]
    pem: str = Field(min_length=50, max_length=5000)
    expected_fingerprint: Name | None = None


class KeyFetchIn(StrictInput):
    use: Literal["sig", "enc"]
    fingerprint: Name


class KeyStatusIn(StrictInput):
    status: Literal["retired", "revoked"]
    reason_code: KeyRevocationReason | None = None


class PublishedKey(BaseModel):
    use: str
    alg: str
    kid: str
    pem: str


class PublishedKeys(BaseModel):
    instance_id: str | None
    keys: list[PublishedKey]


# -- packages --------------------------------------------------------------------------------
class PreviewOut(BaseModel):
    """Exactly what would leave the country, by name; no value is decrypted for this."""

    case_id: uuid.UUID
    partner_id: uuid.UUID
    purpose: str
    consent_ok: bool
    problems: list[str]
    consent_ids: list[uuid.UUID]
    groups: list[str]
    fields: list[str]
    excluded_groups: dict[str, str]
    context: dict[str, str]


class AttachmentIn(StrictInput):
    media_type: Literal["application/pdf", "image/jpeg", "image/png"]
    content_base64: str = Field(min_length=4, max_length=200_000)


class ReferralIn(StrictInput):
    partner_id: Uuid
    purpose: PackagePurpose
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=3)


class MessageOut(BaseModel):
    id: uuid.UUID
    direction: str
    msg_type: str
    jti: str
    state: str
    created_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None
    ack_due_at: datetime | None
    attempts: int
    last_error: str | None
    refusal_reason: str | None
    evidence_id: uuid.UUID | None
    receipt_evidence_id: uuid.UUID | None


class DueOut(BaseModel):
    kind: str
    due_at: datetime
    overdue: bool
    checkpoint_days: int | None = None


class RecordOut(BaseModel):
    id: uuid.UUID
    kind: str
    side: str
    codes: dict[str, Any]
    created_at: datetime


class ExchangeOut(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    direction: str
    partner_id: uuid.UUID
    partner_country: str
    partner_institution: str
    purpose: str
    status: str
    status_changed_at: datetime
    case_id: uuid.UUID | None
    remote_case_reference: str | None
    groups: list[str]
    fields: list[str]
    age_band: str | None
    receiving_agency_id: uuid.UUID | None
    receiving_organisation_name: str | None
    risk_level_local: str | None
    risk_level_partner: str | None
    risk_finalised_at: datetime | None
    travel_on: date | None
    arrived_on: date | None
    handed_over_at: datetime | None
    follow_up_checkpoints_days: list[int]
    re_trafficking_reported_at: datetime | None
    consent_withdrawn_at: datetime | None
    content_shredded: bool
    created_at: datetime
    due: list[DueOut]
    messages: list[MessageOut] = Field(default_factory=list)
    records: list[RecordOut] = Field(default_factory=list)


class ExchangePage(BaseModel):
    items: list[ExchangeOut]
    total: int


class PackageOut(BaseModel):
    """An incoming package as reviewed by the receiving focal point (audited read)."""

    exchange_id: uuid.UUID
    purpose: str
    sender: dict[str, Any]
    consent: list[dict[str, Any]]
    groups: list[str]
    context: dict[str, Any]
    data: dict[str, Any]
    attachments: list[dict[str, Any]]
    evidence_id: uuid.UUID


class AcceptIn(StrictInput):
    receiving_agency_id: Uuid | None = None


class RejectIn(StrictInput):
    reason_code: RejectionReason


class StatusIn(StrictInput):
    code: StatusCode


class RiskPartIn(StrictInput):
    risk_level: RiskLevel
    assessment: LongText


class LogisticsIn(StrictInput):
    travel_on: date
    mode: TravelMode
    escort: bool
    arrival_point: ShortText | None = None
    details: LongText | None = None

    @field_validator("travel_on")
    @classmethod
    def _not_past(cls, value: date) -> date:
        from app.db.base import utcnow

        if value < utcnow().date():
            raise ValueError("the travel date cannot be in the past")
        return value


class ArrivalIn(StrictInput):
    arrived_on: PastDate


class ReintegrationIn(StrictInput):
    plan: LongText
    allowance_amount: int | None = Field(default=None, ge=0, le=10_000_000)
    allowance_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    allowance_schedule: ShortText | None = None


class FollowUpIn(StrictInput):
    checkpoint_days: int = Field(ge=0, le=3650)
    status: FollowUpStatus
    summary: LongText | None = None


class ReTraffickingIn(StrictInput):
    reason: LongText


class ReferralQueued(BaseModel):
    exchange_id: uuid.UUID
    thread_id: uuid.UUID
    message_id: uuid.UUID
    jti: str
    status: str
    groups: list[str]
    fields: list[str]


class ActionOut(BaseModel):
    exchange_id: uuid.UUID
    status: str
    case_id: uuid.UUID | None = None
    case_version: int | None = None
    message_id: uuid.UUID | None = None
    partner_notified: bool = False


class EvidenceOut(BaseModel):
    id: uuid.UUID
    exchange_id: uuid.UUID
    kind: str
    typ: str
    msg_type: str
    issuer: str
    jti: str
    signing_kid: str
    sha256: str
    created_at: datetime
    token: str
    signature_valid: bool
    signing_key_status: str


class QuarantineOut(BaseModel):
    id: uuid.UUID
    received_at: datetime
    reason_code: str
    reason: str
    partner_id: uuid.UUID | None
    claimed_issuer: str | None
    claimed_kid: str | None
    claimed_jti: str | None
    claimed_typ: str | None
    size: int
    sha256: str | None
    body_kept: bool
    content_type: str | None = None
    source_address: str | None = None
    repeat_count: int = 1
    last_received_at: datetime | None = None


# -- classification --------------------------------------------------------------------------
class ClassificationIn(StrictInput):
    classification: TraffickingClassification
    reason_code: ReclassificationReason


class ClassificationChange(BaseModel):
    occurred_at: datetime
    from_: str = Field(serialization_alias="from")
    to: str
    reason_code: str
    actor_role: str | None


class ClassificationOut(BaseModel):
    case_id: uuid.UUID
    classification: str
    version: int
    history: list[ClassificationChange]
