"""Tables of the transnational referral mechanism (TRM).

Directory: this instance's identity, partner instances (institutions, not people), their
focal-point contacts with deputies, and public keys pinned out of band.

Exchange: one row per referral thread (both sides keep the same `thread_id`), its messages,
the signed evidence (append-only), attachments, sealed working records (risk assessment
parts, logistics, allowance, follow-up reports) and quarantined packages.

Nothing personal is stored in clear. Package content, evidence tokens, attachments and
record bodies are sealed under a per-exchange data key (`transnational_exchange_keys`,
wrapped by the key ring); deleting that key crypto-shreds the exchange's content while its
hashes, receipts and audit trail stay.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.crypto.wrapped import WrappedKeyKind, register
from app.db.base import Base, IdMixin, TimestampMixin, utcnow

Sealed = LargeBinary


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


PARTNER_STATUSES = ("active", "suspended")
CONTACT_RANKS = ("primary", "deputy")
KEY_USES = ("sig", "enc")
KEY_STATUSES = ("active", "retired", "revoked")
DIRECTIONS = ("outgoing", "incoming")
EXCHANGE_STATUSES = (
    "queued",
    "delivered",
    "received",
    "accepted",
    "rejected",
    "travel_arranged",
    "arrived",
    "handed_over",
    "monitoring",
    "closed",
    "refused_by_partner",
    "delivery_failed",
    "consent_withdrawn",
)
MESSAGE_STATES = ("queued", "delivered", "refused", "failed", "cancelled", "expired", "received")
EVIDENCE_KINDS = ("package_sent", "package_received", "receipt_sent", "receipt_received")


class LocalInstance(Base):
    """This instance as partners know it: the issuer of its packages, and who receives."""

    __tablename__ = "transnational_local_instance"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    instance_id: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    institution: Mapped[str] = mapped_column(String(200))
    focal_point_agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Partner(IdMixin, TimestampMixin, Base):
    """A partner instance: a national focal-point institution running its own Passage."""

    __tablename__ = "transnational_partners"
    __table_args__ = (CheckConstraint(_in("status", PARTNER_STATUSES), name="status_valid"),)

    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    institution: Mapped[str] = mapped_column(String(200))
    instance_id: Mapped[str] = mapped_column(String(200), unique=True)
    base_url: Mapped[str] = mapped_column(String(300))
    working_languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_verified_on: Mapped[date | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="active")


class PartnerContact(IdMixin, Base):
    """An institutional contact (a role title and a functional mailbox), never a person."""

    __tablename__ = "transnational_partner_contacts"
    __table_args__ = (CheckConstraint(_in("rank", CONTACT_RANKS), name="rank_valid"),)

    partner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_partners.id"), index=True
    )
    role_title: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(30))
    rank: Mapped[str] = mapped_column(String(10))
    out_of_hours: Mapped[bool] = mapped_column(default=False)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartnerKey(IdMixin, Base):
    """A partner public key pinned out of band; `kid` is its RFC 7638 thumbprint."""

    __tablename__ = "transnational_partner_keys"
    __table_args__ = (
        UniqueConstraint("partner_id", "kid", name="uq_transnational_partner_keys_partner_kid"),
        CheckConstraint(_in("use", KEY_USES), name="use_valid"),
        CheckConstraint(_in("status", KEY_STATUSES), name="status_valid"),
    )

    partner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_partners.id"), index=True
    )
    use: Mapped[str] = mapped_column(String(3))
    kid: Mapped[str] = mapped_column(String(64))
    public_pem: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="active")
    pinned_via: Mapped[str] = mapped_column(String(20))
    pinned_at: Mapped[datetime] = mapped_column(default=utcnow)
    pinned_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    retired_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revocation_reason: Mapped[str | None] = mapped_column(String(40))


class Exchange(IdMixin, TimestampMixin, Base):
    """One referral thread with one partner, seen from this side."""

    __tablename__ = "transnational_exchanges"
    __table_args__ = (
        UniqueConstraint(
            "partner_id", "thread_id", name="uq_transnational_exchanges_partner_thread"
        ),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction_valid"),
        CheckConstraint(_in("status", EXCHANGE_STATUSES), name="status_valid"),
        Index("ix_transnational_exchanges_agency_status", "local_agency_id", "status"),
    )

    thread_id: Mapped[uuid.UUID] = mapped_column()
    direction: Mapped[str] = mapped_column(String(10))
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("transnational_partners.id"))
    # The focal-point agency handling the thread here.
    local_agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    # Incoming: the local organisation named on acceptance to receive the person.
    receiving_agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agencies.id"))
    purpose: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(30))
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    consent_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    age_band: Mapped[str | None] = mapped_column(String(10))
    remote_case_reference: Mapped[str | None] = mapped_column(String(40))
    # Outgoing: the organisation the partner named (an institution, not a person).
    receiving_organisation_name: Mapped[str | None] = mapped_column(String(200))
    receiving_organisation_type: Mapped[str | None] = mapped_column(String(40))
    decision_due_at: Mapped[datetime | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str | None] = mapped_column(String(40))
    risk_level_local: Mapped[str | None] = mapped_column(String(10))
    risk_level_partner: Mapped[str | None] = mapped_column(String(10))
    risk_finalised_at: Mapped[datetime | None] = mapped_column()
    travel_on: Mapped[date | None] = mapped_column()
    arrived_on: Mapped[date | None] = mapped_column()
    handed_over_at: Mapped[datetime | None] = mapped_column()
    follow_up_checkpoints_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    re_trafficking_reported_at: Mapped[datetime | None] = mapped_column()
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column()
    shredded_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=1)


class ExchangeKey(IdMixin, Base):
    """The exchange's data key, wrapped by a key-encryption key. Deleting it crypto-shreds."""

    __tablename__ = "transnational_exchange_keys"

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_exchanges.id"), unique=True
    )
    kek_kid: Mapped[str] = mapped_column(String(40), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column()


def exchange_key_aad(kek_kid: str, key_id: uuid.UUID, exchange_id: uuid.UUID) -> bytes:
    return b"|".join(
        [b"passage:exchange-key", b"1", kek_kid.encode(), key_id.bytes, exchange_id.bytes]
    )


EXCHANGE_KEYS = register(
    WrappedKeyKind(
        "exchange_keys",
        ExchangeKey,
        lambda kid, row: exchange_key_aad(kid, row.id, row.exchange_id),
    )
)


class ExchangeMessage(IdMixin, Base):
    """A message sent or received on a thread. Outgoing tokens wait here until delivered."""

    __tablename__ = "transnational_messages"
    __table_args__ = (
        UniqueConstraint("issuer", "jti", name="uq_transnational_messages_issuer_jti"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction_valid"),
        CheckConstraint(_in("state", MESSAGE_STATES), name="state_valid"),
        Index("ix_transnational_messages_state_due", "state", "next_attempt_at"),
    )

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_exchanges.id"), index=True
    )
    direction: Mapped[str] = mapped_column(String(10))
    msg_type: Mapped[str] = mapped_column(String(30))
    issuer: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(200))
    jti: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    # Outgoing only, until delivered: the JWE (ciphertext for the partner) and attachments.
    token: Mapped[str | None] = mapped_column(Text)
    attachment_tokens: Mapped[list[str] | None] = mapped_column(JSON)
    # Consents this message relies on: re-checked before every delivery attempt.
    consent_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ack_due_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(60))
    refusal_reason: Mapped[str | None] = mapped_column(String(40))
    evidence_id: Mapped[uuid.UUID | None] = mapped_column()
    receipt_evidence_id: Mapped[uuid.UUID | None] = mapped_column()


class Evidence(IdMixin, Base):
    """Signed tokens kept verbatim as evidence. Append-only (PostgreSQL triggers refuse
    UPDATE and DELETE). Packages are sealed under the exchange key; receipts hold no
    personal data and are kept in clear."""

    __tablename__ = "transnational_evidence"
    __table_args__ = (CheckConstraint(_in("kind", EVIDENCE_KINDS), name="kind_valid"),)

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_exchanges.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    typ: Mapped[str] = mapped_column(String(30))
    msg_type: Mapped[str] = mapped_column(String(30))
    issuer: Mapped[str] = mapped_column(String(200))
    jti: Mapped[str] = mapped_column(String(100))
    signing_kid: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    token_sealed: Mapped[bytes | None] = mapped_column(Sealed)
    token_clear: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(IdMixin, Base):
    """A document sent with a package as its own encrypted part; content sealed here."""

    __tablename__ = "transnational_attachments"

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_exchanges.id"), index=True
    )
    message_jti: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(10))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(Sealed)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExchangeRecord(IdMixin, Base):
    """A working record on a thread: codes in clear, any text sealed under the exchange key."""

    __tablename__ = "transnational_records"

    exchange_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transnational_exchanges.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    side: Mapped[str] = mapped_column(String(10))  # local | partner
    codes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes | None] = mapped_column(Sealed)
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuarantinedPackage(IdMixin, Base):
    """A message that failed verification: never imported, kept with the reason.

    `body` is the encrypted request part as received (ciphertext to our key, never the
    decrypted content); bodies refused at the edge (oversize, wrong media type) keep only
    their size, their hash when they were read whole, the claimed media type and the source
    address. `claimed_*` values are unverified and only describe what arrived.

    Repeated refusals from one source are counted on one row (`repeat_count`,
    `last_received_at`) instead of adding rows without bound (app/transnational/incoming.py,
    docs/transnational.md)."""

    __tablename__ = "transnational_quarantine"

    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    reason_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transnational_partners.id"))
    claimed_issuer: Mapped[str | None] = mapped_column(String(200))
    claimed_kid: Mapped[str | None] = mapped_column(String(100))
    claimed_jti: Mapped[str | None] = mapped_column(String(100))
    claimed_typ: Mapped[str | None] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)  # a declared Content-Length may be huge
    sha256: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    # The media type as claimed (type/subtype, parameter names, the charset value only).
    content_type: Mapped[str | None] = mapped_column(String(100))
    # The peer address as the server saw it (after trusted proxy headers), when it is one.
    source_address: Mapped[str | None] = mapped_column(String(45))
    repeat_count: Mapped[int] = mapped_column(default=1, server_default="1")
    last_received_at: Mapped[datetime | None] = mapped_column()
    reviewed_at: Mapped[datetime | None] = mapped_column()
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
