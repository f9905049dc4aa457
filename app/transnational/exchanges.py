"""The core of a referral thread: who sees it, its states, queuing a signed and encrypted
message through the outbox, sealed working records and the audit trail.

States of a thread (the same words on both sides; arrows are what moves them):

    outgoing (sending country)             incoming (receiving country)
    queued --receipt--> delivered          received
    delivered --accepted/rejected-->       received --accept/reject--> accepted|rejected
    accepted --logistics--> travel_arranged            --logistics--> travel_arranged
    travel_arranged --arrival_confirmed--> arrived     --arrival (case opened)--> arrived
    arrived --handover confirmed--> handed_over        --handover_confirmed--> monitoring
    handed_over --follow_up--> monitoring              --follow_up--> monitoring
    any open state --consent withdrawn--> consent_withdrawn
    queued --refused by partner / undeliverable--> refused_by_partner | delivery_failed
    any open state --status "closed"--> closed
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.cases.models import Consent, OutboxMessage
from app.cases.service import require
from app.context import AppContext
from app.db.base import utcnow
from app.errors import Conflict, Forbidden, NotFound
from app.transnational.directory import encryption_key, require_local
from app.transnational.keys import exchange_codec, instance_keys
from app.transnational.models import (
    Attachment,
    Evidence,
    Exchange,
    ExchangeMessage,
    ExchangeRecord,
    Partner,
)
from app.transnational.protocol import (
    PACKAGE_LIFETIME_SECONDS,
    seal_message,
    typ_for,
)
from app.transnational.vocab import MessageType

EXCHANGE_ACTOR = Actor.system("exchange")
DELIVER_TOPIC = "transnational.deliver"
QUARANTINE_ALERT_TOPIC = "alert.transnational_quarantine"
ACK_TARGET = timedelta(hours=24)
DECISION_TARGET = timedelta(days=10)
TERMINAL = frozenset(
    {"rejected", "refused_by_partner", "delivery_failed", "consent_withdrawn", "closed"}
)
# Evidence of these messages holds no personal data and stays readable after shredding.
CLEAR_EVIDENCE = frozenset({MessageType.consent_withdrawn})


# -- visibility --------------------------------------------------------------------------------
def visible_condition(actor: Actor) -> ColumnElement[bool]:
    """The focal-point agency handling a thread, and the organisation named to receive."""
    if actor.agency_id is None or actor.user_id is None:
        return false()
    return or_(
        Exchange.local_agency_id == actor.agency_id,
        Exchange.receiving_agency_id == actor.agency_id,
    )


def load_exchange(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, *, lock: bool = False
) -> Exchange:
    """Scoped load: a thread of another agency and a missing id look the same (audited)."""
    stmt = select(Exchange).where(Exchange.id == exchange_id, visible_condition(actor))
    if lock:
        stmt = stmt.with_for_update()
    exchange = session.scalars(stmt).one_or_none()
    if exchange is None:
        audit.record(
            session,
            actor,
            "access_denied",
            entity_type="transnational_exchange",
            entity_id=exchange_id,
            details={"reason": "out_of_scope_or_missing"},
        )
        raise NotFound(audited=True)
    return exchange


def require_focal_point(ctx: AppContext, actor: Actor, exchange: Exchange) -> None:
    require(ctx, actor, "handover.manage")
    if exchange.local_agency_id != actor.agency_id:
        raise Forbidden("only the focal point handling this thread may do this")


def require_direction(exchange: Exchange, direction: str) -> None:
    if exchange.direction != direction:
        side = "sending" if direction == "outgoing" else "receiving"
        raise Conflict(f"this step is taken by the {side} country", code="wrong_side")


def set_status(exchange: Exchange, new: str, allowed_from: Iterable[str], *, now: datetime) -> None:
    if exchange.status not in set(allowed_from):
        raise Conflict(
            f"this thread is {exchange.status.replace('_', ' ')}; that step is not possible now",
            code="exchange_state",
        )
    if new != exchange.status:
        exchange.status = new
        exchange.status_changed_at = now
    exchange.version += 1


def require_open(exchange: Exchange) -> None:
    if exchange.status in TERMINAL:
        raise Conflict(
            f"this thread is {exchange.status.replace('_', ' ')}", code="exchange_closed"
        )


# -- audit -------------------------------------------------------------------------------------
def audit_exchange(
    session: Session,
    actor: Actor,
    exchange: Exchange,
    action: str,
    *,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    fields: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """On the case's chain once the thread has a local case, else on the thread's own chain."""
    merged = {"exchange_id": str(exchange.id), "thread_id": str(exchange.thread_id)}
    if entity_type == "transnational_evidence" and entity_id is not None:
        merged["evidence_id"] = str(entity_id)  # timelines show details: link the evidence
    merged.update(details or {})
    if exchange.case_id is not None:
        audit.record(
            session,
            actor,
            action,
            case_id=exchange.case_id,
            entity_type=entity_type,
            entity_id=entity_id,
            fields=fields,
            details=merged,
            occurred_at=occurred_at,
        )
    else:
        audit.record(
            session,
            actor,
            action,
            chain_key=f"exchange:{exchange.id}",
            entity_type=entity_type,
            entity_id=entity_id,
            fields=fields,
            details=merged,
            occurred_at=occurred_at,
        )


# -- consents ----------------------------------------------------------------------------------
def consents_still_valid(session: Session, consent_ids: Sequence[str], today: date) -> bool:
    """Every consent a message relies on is still given: not withdrawn, not expired."""
    if not consent_ids:
        return True
    ids = [uuid.UUID(c) for c in consent_ids]
    rows = list(session.scalars(select(Consent).where(Consent.id.in_(ids))))
    if len(rows) != len(set(ids)):
        return False
    return all(
        c.withdrawn_at is None and (c.expires_on is None or c.expires_on >= today) for c in rows
    )


# -- queuing -----------------------------------------------------------------------------------
def queue_message(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    exchange: Exchange,
    msg: MessageType,
    body: BaseModel,
    *,
    consent_ids: Sequence[str] = (),
    attachments: Sequence[tuple[Attachment, bytes]] = (),
    fields: Iterable[str] = (),
    now: datetime | None = None,
    audit_details: dict[str, Any] | None = None,
) -> ExchangeMessage:
    """Sign (ES256, typed), encrypt to the partner's pinned key, keep the signed token sealed
    as evidence, and queue the delivery in the outbox: all in the caller's transaction."""
    moment = now or utcnow()
    local = require_local(session)
    partner = session.get(Partner, exchange.partner_id)
    if partner is None or partner.status != "active":
        raise Conflict("this partner is suspended in the directory", code="partner_suspended")
    recipient = encryption_key(session, partner)
    if recipient is None:
        raise Conflict(
            "no encryption key is pinned for this partner; ask an administrator",
            code="no_partner_key",
        )
    own = instance_keys(ctx)
    sealed = seal_message(
        issuer=local.instance_id,
        audience=partner.instance_id,
        msg=msg,
        thread=exchange.thread_id,
        body=body,
        signing_private_pem=own.signing_private_pem,
        signing_kid=own.signing_kid,
        recipient_public_pem=recipient.public_pem,
        recipient_kid=recipient.kid,
        now=int(moment.timestamp()),
        lifetime_seconds=PACKAGE_LIFETIME_SECONDS,
        attachments=[content for _, content in attachments],
    )
    evidence = Evidence(
        exchange_id=exchange.id,
        kind="package_sent",
        typ=typ_for(msg),
        msg_type=str(msg),
        issuer=local.instance_id,
        jti=sealed.jti,
        signing_kid=own.signing_kid,
        sha256=sealed.sha256,
        created_at=moment,
    )
    if msg in CLEAR_EVIDENCE:
        evidence.token_clear = sealed.signed
    else:
        codec = exchange_codec(session, ctx, exchange.id)
        evidence.token_sealed = codec.seal(
            "transnational_evidence", "token", evidence.id, sealed.signed
        )
    for attachment, _ in attachments:
        attachment.message_jti = sealed.jti
    message = ExchangeMessage(
        exchange_id=exchange.id,
        direction="outgoing",
        msg_type=str(msg),
        issuer=local.instance_id,
        audience=partner.instance_id,
        jti=sealed.jti,
        state="queued",
        token=sealed.encrypted,
        attachment_tokens=sealed.attachments or None,
        consent_ids=list(consent_ids),
        sha256=sealed.sha256,
        issued_at=datetime.fromtimestamp(sealed.iat, tz=moment.tzinfo),
        expires_at=datetime.fromtimestamp(sealed.exp, tz=moment.tzinfo),
        created_at=moment,
        ack_due_at=moment + ACK_TARGET,
        next_attempt_at=moment,
        evidence_id=evidence.id,
    )
    session.add_all([evidence, message])
    session.flush()
    session.add(
        OutboxMessage(
            topic=DELIVER_TOPIC, payload={"message_id": str(message.id)}, created_at=moment
        )
    )
    details = {
        "msg_type": str(msg),
        "jti": sealed.jti,
        "sha256": sealed.sha256,
        "partner_id": str(partner.id),
        "attachments": len(attachments),
    }
    details.update(audit_details or {})
    audit_exchange(
        session,
        actor,
        exchange,
        "transnational_message_queued",
        entity_type="transnational_evidence",
        entity_id=evidence.id,
        fields=fields,
        details=details,
        occurred_at=moment,
    )
    return message


# -- records -----------------------------------------------------------------------------------
def add_record(
    session: Session,
    ctx: AppContext,
    exchange: Exchange,
    *,
    kind: str,
    side: str,
    codes: dict[str, Any],
    text: Any = None,
    message_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> ExchangeRecord:
    record = ExchangeRecord(
        exchange_id=exchange.id,
        kind=kind,
        side=side,
        codes=codes,
        message_id=message_id,
        author_id=author_id,
        created_at=now or utcnow(),
    )
    if text is not None:
        codec = exchange_codec(session, ctx, exchange.id)
        record.body = codec.seal("transnational_records", "body", record.id, text)
    session.add(record)
    session.flush()
    return record


def records_of(
    session: Session, exchange: Exchange, kind: str | None = None
) -> list[ExchangeRecord]:
    stmt = select(ExchangeRecord).where(ExchangeRecord.exchange_id == exchange.id)
    if kind is not None:
        stmt = stmt.where(ExchangeRecord.kind == kind)
    return list(session.scalars(stmt.order_by(ExchangeRecord.created_at)))


def messages_of(session: Session, exchange: Exchange) -> list[ExchangeMessage]:
    stmt = select(ExchangeMessage).where(ExchangeMessage.exchange_id == exchange.id)
    return list(session.scalars(stmt.order_by(ExchangeMessage.created_at)))


def completed_follow_ups(session: Session, case_id: uuid.UUID) -> dict[int, datetime]:
    """Post-return follow-ups done for a case, keyed by checkpoint day (for the deadlines
    engine's ``Milestones.completed_follow_ups``): reports received from the partner on the
    sending side, reports sent on the receiving side."""
    stmt = (
        select(ExchangeRecord)
        .join(Exchange, Exchange.id == ExchangeRecord.exchange_id)
        .where(Exchange.case_id == case_id, ExchangeRecord.kind == "follow_up")
        .order_by(ExchangeRecord.created_at)
    )
    out: dict[int, datetime] = {}
    for record in session.scalars(stmt):
        day = record.codes.get("checkpoint_days")
        if isinstance(day, int):
            out.setdefault(day, record.created_at)
    return out


def follow_up_schedule(exchange: Exchange) -> list[tuple[int, datetime]]:
    start = exchange.arrived_on
    if start is None or not exchange.follow_up_checkpoints_days:
        return []
    from datetime import UTC, time

    base = datetime.combine(start, time(23, 59, 59), tzinfo=UTC)
    return [(d, base + timedelta(days=d)) for d in sorted(exchange.follow_up_checkpoints_days)]
