"""API schemas for registration, updates and case views."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from app.common.schemas import (
    DocumentNumber,
    Email,
    LongText,
    Name,
    PastDate,
    Phone,
    ShortText,
    StrictInput,
)
from app.vocab import (
    ConsentPurpose,
    CountryCode,
    DetectingOrganisationType,
    DocumentType,
    ExploitationForm,
    Indicator,
    LabourSector,
    LanguageCode,
    Sex,
    TraffickingAct,
    TraffickingMeans,
)


class DocumentIn(StrictInput):
    type: DocumentType
    number: DocumentNumber | None = None
    issuing_country: CountryCode | None = None


class VictimFields(StrictInput):
    """Personal fields of a victim. All optional: a first contact often knows little."""

    given_name: Name | None = None
    family_name: Name | None = None
    aliases: list[Name] = Field(default_factory=list, max_length=10)
    date_of_birth: PastDate | None = None
    estimated_age: int | None = Field(default=None, ge=0, le=120)
    age_uncertain: bool = False
    sex: Sex = Sex.unknown
    gender_identity: ShortText | None = None
    nationalities: list[CountryCode] = Field(default_factory=list, max_length=5)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=10)
    interpreter_needed: bool = False
    documents: list[DocumentIn] = Field(default_factory=list, max_length=10)
    phone: Phone | None = None
    email: Email | None = None
    current_location: ShortText | None = None
    current_address: ShortText | None = None
    accommodation: ShortText | None = None
    unaccompanied_minor: bool = False
    pregnant: bool = False
    disability: ShortText | None = None
    health_notes: LongText | None = None


class CaseFields(StrictInput):
    """Facts of the exploitation and detection, and the support file."""

    exploitation_forms: list[ExploitationForm] = Field(default_factory=list, max_length=12)
    exploitation_acts: list[TraffickingAct] = Field(default_factory=list, max_length=10)
    exploitation_means: list[TraffickingMeans] = Field(default_factory=list, max_length=20)
    exploitation_form_details: LongText | None = None
    labour_sector: LabourSector | None = None
    online_exploitation: bool = False
    countries_of_recruitment: list[CountryCode] = Field(default_factory=list, max_length=10)
    countries_of_transit: list[CountryCode] = Field(default_factory=list, max_length=10)
    countries_of_exploitation: list[CountryCode] = Field(default_factory=list, max_length=10)
    exploitation_start: PastDate | None = None
    exploitation_end: PastDate | None = None
    detection_place: ShortText | None = None
    indicators: list[Indicator] = Field(default_factory=list, max_length=40)
    needs_assessment: LongText | None = None
    support_plan: LongText | None = None
    statement_summary: LongText | None = None

    @model_validator(mode="after")
    def _period_in_order(self) -> CaseFields:
        if (
            self.exploitation_start
            and self.exploitation_end
            and self.exploitation_end < self.exploitation_start
        ):
            raise ValueError("exploitation_end must not be before exploitation_start")
        return self


class DetectionIn(StrictInput):
    detected_on: PastDate
    detecting_org_type: DetectingOrganisationType
    country_profile: Name | None = None


class ConsentIn(StrictInput):
    purpose: ConsentPurpose
    recipient_agency_id: uuid.UUID | None = None
    recipient_description: ShortText | None = None
    scope: list[Name] = Field(min_length=1, max_length=20, description="field groups covered")
    given_on: PastDate
    expires_on: date | None = None

    @model_validator(mode="after")
    def _expiry_after_given(self) -> ConsentIn:
        if self.expires_on is not None and self.expires_on < self.given_on:
            raise ValueError("expires_on must not be before given_on")
        return self


class RegistrationIn(StrictInput):
    """Register a presumed victim: opens the victim record and its case together."""

    victim: VictimFields
    case: CaseFields = Field(default_factory=CaseFields)
    detection: DetectionIn
    consents: list[ConsentIn] = Field(default_factory=list, max_length=20)


class VictimPatch(VictimFields):
    """Only the keys sent are changed."""


class CasePatch(CaseFields):
    """Only the keys sent are changed. Stage, owner and version are not patchable."""


class NoteIn(StrictInput):
    kind: Name = Field(default="note", pattern=r"^(note|assistance|contact)$")
    body: LongText


class ReferralIn(StrictInput):
    agency_id: uuid.UUID
    access_role: Name = Field(pattern=r"^[a-z_]+$")
    purpose: ShortText
    expires_at: datetime | None = None


class CaseSummary(BaseModel):
    """List rows: no sealed field ever appears here."""

    id: uuid.UUID
    reference: str
    stage: str
    version: int
    owning_agency_id: uuid.UUID
    country_profile: str
    age_band: str
    detected_on: date
    stage_entered_at: datetime
    next_due_at: datetime | None


class CasePage(BaseModel):
    items: list[CaseSummary]
    total: int
    limit: int
    offset: int


class CaseView(BaseModel):
    """A case as one actor may see it. `victim` and `details` hold only visible fields."""

    id: uuid.UUID
    reference: str
    stage: str
    version: int
    owning_agency_id: uuid.UUID
    country_profile: str
    classification: str
    age_band: str
    sex: str
    nationality: str | None
    exploitation_forms: list[str]
    detecting_org_type: str
    detected_on: date
    stage_entered_at: datetime
    residence_permit_status: str
    proceedings_status: str
    victim_id: uuid.UUID | None = None
    victim: dict[str, Any] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


class DuplicateMatch(BaseModel):
    """Only that a possible match exists, and which agency to contact."""

    agency_id: uuid.UUID
    agency_name: str
    matched_on: list[str]


class ErasureIn(StrictInput):
    legal_basis: ShortText
    reason_code: Name = Field(pattern=r"^[a-z_]+$")
