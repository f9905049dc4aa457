"""The wire protocol between instances: message shapes, signing then encrypting, and the
verification pipeline that turns a request body into a verified message or a coded refusal.

Every message is a nested JWT (RFC 7519 §11.2): an ES256 JWS signed by the sending
instance, with an explicit type (``referral+jwt`` for packages, ``update+jwt`` for
everything said about a thread afterwards), iss/aud/iat/exp/jti, then a JWE
(RSA-OAEP-256 + A256GCM, never compressed) to the recipient's pinned key. Receipts are
``receipt+jwt`` JWS returned in the HTTP answer (they hold no personal data).
Attachments travel as separate JWEs whose SHA-256 and size are listed in the signed
package.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.cases.schemas import CaseFields, VictimFields
from app.common.schemas import LongText, Name, ShortText
from app.crypto import jose_strict
from app.crypto.jose_strict import PackageRefused
from app.transnational.dataset import NEVER_SENT, PURPOSE_GROUPS, check_incoming_fields
from app.transnational.vocab import (
    FollowUpStatus,
    MessageType,
    PackagePurpose,
    RejectionReason,
    RiskLevel,
    StatusCode,
    TravelMode,
)
from app.vocab import AgencyType, ConsentPurpose, CountryCode, TraffickingClassification

PROTOCOL_VERSION = 1
TYP_REFERRAL = "referral+jwt"
TYP_UPDATE = "update+jwt"
TYP_RECEIPT = "receipt+jwt"
CTY_ATTACHMENT = "passage-attachment"

PACKAGE_LIFETIME_SECONDS = 3 * 24 * 3600  # long enough for the outbox to retry
MAX_LIFETIME_SECONDS = 7 * 24 * 3600
RECEIPT_LIFETIME_SECONDS = 24 * 3600
MAX_MESSAGE_TOKEN_BYTES = 200_000  # python-jose refuses JWEs above 250 KiB anyway
MAX_ATTACHMENT_BYTES = 128 * 1024
MAX_ATTACHMENTS = 3
MAX_ATTACHMENT_TOKEN_BYTES = 200_000
MAX_BODY_BYTES = 800_000
ATTACHMENT_MEDIA_TYPES = frozenset({"application/pdf", "image/jpeg", "image/png"})

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
CaseReference = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{1,40}$")]
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class _Claims(BaseModel):
    """Incoming claims are strict: unknown keys are refused, like every other input."""

    model_config = ConfigDict(extra="forbid", str_max_length=5000, frozen=True)


# -- bodies ------------------------------------------------------------------------------------
class ConsentRef(_Claims):
    id: uuid.UUID
    purpose: ConsentPurpose
    scope: list[Name] = Field(max_length=20)
    given_on: date
    expires_on: date | None = None


class SenderInfo(_Claims):
    country: CountryCode
    institution: ShortText
    case_reference: CaseReference | None = None


class PackageContext(_Claims):
    """Always sent: what safeguarding needs, never who the person is."""

    age_band: Literal["child", "adult", "unknown"]
    classification: TraffickingClassification


class AttachmentRef(_Claims):
    id: uuid.UUID
    media_type: str = Field(max_length=100)
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES)
    sha256: Sha256Hex


class PackageData(_Claims):
    victim: dict[str, Any] = Field(default_factory=dict)
    case: dict[str, Any] = Field(default_factory=dict)


class ReferralBody(_Claims):
    purpose: PackagePurpose
    sender: SenderInfo
    consent: list[ConsentRef] = Field(min_length=1, max_length=10)
    groups: list[Name] = Field(min_length=1, max_length=20)
    context: PackageContext
    data: PackageData
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class ReceivingOrganisation(_Claims):
    name: ShortText
    type: AgencyType


class AcceptedBody(_Claims):
    receiving_organisation: ReceivingOrganisation | None = None


class RejectedBody(_Claims):
    reason_code: RejectionReason


class StatusBody(_Claims):
    code: StatusCode


class RiskAssessmentBody(_Claims):
    risk_level: RiskLevel
    assessment: LongText


class LogisticsBody(_Claims):
    travel_on: date
    mode: TravelMode
    escort: bool
    arrival_point: ShortText | None = None
    details: LongText | None = None


class ArrivalConfirmedBody(_Claims):
    arrived_on: date
    case_reference: CaseReference


class HandoverConfirmedBody(_Claims):
    follow_up_checkpoints_days: list[int] = Field(max_length=12)


class FollowUpData(_Claims):
    case: dict[str, Any] = Field(default_factory=dict)


class FollowUpBody(_Claims):
    checkpoint_days: int = Field(ge=0, le=3650)
    status: FollowUpStatus
    summary: LongText | None = None
    groups: list[Name] = Field(default_factory=list, max_length=5)
    data: FollowUpData = Field(default_factory=FollowUpData)


class ReTraffickingBody(_Claims):
    reported_on: date


class ConsentWithdrawnBody(_Claims):
    consent_ids: list[uuid.UUID] = Field(max_length=20)


BODIES: dict[MessageType, type[_Claims]] = {
    MessageType.referral: ReferralBody,
    MessageType.accepted: AcceptedBody,
    MessageType.rejected: RejectedBody,
    MessageType.status: StatusBody,
    MessageType.risk_assessment: RiskAssessmentBody,
    MessageType.logistics: LogisticsBody,
    MessageType.arrival_confirmed: ArrivalConfirmedBody,
    MessageType.handover_confirmed: HandoverConfirmedBody,
    MessageType.follow_up: FollowUpBody,
    MessageType.re_trafficking: ReTraffickingBody,
    MessageType.consent_withdrawn: ConsentWithdrawnBody,
}


class Envelope(_Claims):
    iss: str = Field(max_length=200)
    aud: str = Field(max_length=200)
    iat: int
    exp: int
    jti: str = Field(max_length=100)
    passage: Literal[1]
    msg: MessageType
    thread: uuid.UUID
    body: dict[str, Any]


class ReceiptClaims(_Claims):
    iss: str = Field(max_length=200)
    aud: str = Field(max_length=200)
    iat: int
    exp: int
    jti: str = Field(max_length=100)
    passage: Literal[1]
    msg: Literal["receipt"]
    thread: uuid.UUID | None = None
    re: str = Field(max_length=100)
    status: Literal["received", "duplicate", "refused"]
    reason: ReasonCode | None = None
    sha256: Sha256Hex | None = None


def typ_for(msg: MessageType) -> str:
    return TYP_REFERRAL if msg == MessageType.referral else TYP_UPDATE


# -- building ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SealedMessage:
    jti: str
    iat: int
    exp: int
    signed: str  # the JWS: kept sealed as evidence
    encrypted: str  # the JWE: what travels
    sha256: str  # of the JWS
    attachments: list[str]


def seal_message(
    *,
    issuer: str,
    audience: str,
    msg: MessageType,
    thread: uuid.UUID,
    body: BaseModel,
    signing_private_pem: str,
    signing_kid: str,
    recipient_public_pem: str,
    recipient_kid: str,
    now: int,
    lifetime_seconds: int = PACKAGE_LIFETIME_SECONDS,
    attachments: list[bytes] | None = None,
    jti: str | None = None,
) -> SealedMessage:
    typ = typ_for(msg)
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_seconds,
        "jti": jti or str(uuid.uuid4()),
        "passage": PROTOCOL_VERSION,
        "msg": str(msg),
        "thread": str(thread),
        "body": body.model_dump(mode="json"),
    }
    signed = jose_strict.sign(
        claims, signing_private_pem, kid=signing_kid, typ=typ, lifetime_seconds=lifetime_seconds
    )
    encrypted = jose_strict.encrypt(
        signed.encode(), recipient_public_pem, typ=typ, kid=recipient_kid
    )
    parts = [
        jose_strict.encrypt(content, recipient_public_pem, typ=CTY_ATTACHMENT, kid=recipient_kid)
        for content in attachments or []
    ]
    return SealedMessage(
        jti=str(claims["jti"]),
        iat=now,
        exp=now + lifetime_seconds,
        signed=signed,
        encrypted=encrypted,
        sha256=sha256_hex(signed),
        attachments=parts,
    )


def sign_receipt(
    *,
    issuer: str,
    audience: str,
    re: str,
    thread: uuid.UUID | None,
    status: str,
    sha256: str | None,
    reason: str | None,
    signing_private_pem: str,
    signing_kid: str,
    now: int,
) -> str:
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + RECEIPT_LIFETIME_SECONDS,
        "jti": str(uuid.uuid4()),
        "passage": PROTOCOL_VERSION,
        "msg": "receipt",
        "re": re[:100],
        "status": status,
    }
    if thread is not None:
        claims["thread"] = str(thread)
    if sha256 is not None:
        claims["sha256"] = sha256
    if reason is not None:
        claims["reason"] = reason
    return jose_strict.sign(
        claims,
        signing_private_pem,
        kid=signing_kid,
        typ=TYP_RECEIPT,
        lifetime_seconds=RECEIPT_LIFETIME_SECONDS,
    )


# -- parsing -------------------------------------------------------------------------------------
def parse_request_body(raw: bytes) -> tuple[str, list[str]]:
    """The transport document: {"message": JWE, "attachments": [JWE, ...]}."""
    if len(raw) > MAX_BODY_BYTES:
        raise PackageRefused("oversize", "the request is larger than allowed")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageRefused("malformed", "the request is not JSON") from exc
    if not isinstance(document, dict) or set(document) - {"message", "attachments"}:
        raise PackageRefused("malformed", "the request must hold message and attachments only")
    message = document.get("message")
    attachments = document.get("attachments", [])
    if not isinstance(message, str):
        raise PackageRefused("malformed", "message must be a compact JWE string")
    if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
        raise PackageRefused("malformed", "attachments must be a list of compact JWE strings")
    if len(attachments) > MAX_ATTACHMENTS:
        raise PackageRefused("oversize", "too many attachments")
    return message, attachments


def parse_envelope(claims: dict[str, Any], typ: str) -> tuple[Envelope, BaseModel]:
    """Validate verified claims against the message shapes; refuse unknown or odd content."""
    try:
        envelope = Envelope.model_validate(claims)
        body_model = BODIES.get(envelope.msg)
        if body_model is None:
            raise PackageRefused("invalid_content", "this message type cannot be sent")
        body = body_model.model_validate(envelope.body)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise PackageRefused(
            "invalid_content", f"content does not match the protocol: {where}"
        ) from exc
    if typ_for(envelope.msg) != typ:
        raise PackageRefused("wrong_type", "the token type does not match the message")
    if isinstance(body, ReferralBody):
        check_referral_content(body)
    if isinstance(body, FollowUpBody):
        check_follow_up_content(body)
    return envelope, body


def _validate_fields(data: dict[str, Any], model: type[BaseModel]) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise PackageRefused("invalid_content", f"package fields are not valid: {where}") from exc


def check_referral_content(body: ReferralBody) -> None:
    """Defence in depth on the receiving side: the sender must have applied the same rules."""
    groups = set(body.groups)
    consented = {g for c in body.consent for g in c.scope}
    allowed = set(PURPOSE_GROUPS[body.purpose]) - NEVER_SENT
    if not groups <= consented:
        raise PackageRefused(
            "outside_consent", "the package holds groups its consent does not name"
        )
    if not groups <= allowed:
        raise PackageRefused(
            "outside_purpose", "the package holds groups its purpose does not need"
        )
    outside = check_incoming_fields(body.data.model_dump(), groups)
    if outside:
        raise PackageRefused("outside_consent", "the package holds fields outside its groups")
    _validate_fields(body.data.victim, VictimFields)
    _validate_fields(body.data.case, CaseFields)
    for ref in body.attachments:
        if ref.media_type not in ATTACHMENT_MEDIA_TYPES:
            raise PackageRefused("invalid_content", "attachment type not accepted")


def check_follow_up_content(body: FollowUpBody) -> None:
    groups = set(body.groups)
    if not groups <= set(PURPOSE_GROUPS[PackagePurpose.post_return_follow_up]):
        raise PackageRefused("outside_purpose", "a follow-up report holds needs only")
    outside = check_incoming_fields({"case": body.data.case}, groups)
    if outside:
        raise PackageRefused("outside_consent", "the report holds fields outside its groups")
    _validate_fields(body.data.case, CaseFields)
