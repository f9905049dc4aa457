"""Read models for the focal point's screens: outbox and inbox with due acknowledgements,
decisions and follow-up reports; a thread's messages; evidence re-verified on demand;
the quarantine; this instance's published public keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.cases.service import require
from app.context import AppContext
from app.crypto.errors import DataKeyShreddedError
from app.crypto.jose_strict import PackageRefused, peek_claims, verify_signed
from app.db.base import utcnow
from app.errors import Forbidden, InvalidInput, NotFound
from app.transnational.directory import get_local, partner_key
from app.transnational.exchanges import (
    TERMINAL,
    audit_exchange,
    follow_up_schedule,
    load_exchange,
    messages_of,
    records_of,
    require_focal_point,
    visible_condition,
)
from app.transnational.keys import exchange_codec, instance_keys
from app.transnational.models import (
    Evidence,
    Exchange,
    ExchangeMessage,
    Partner,
    QuarantinedPackage,
)
from app.transnational.protocol import MAX_LIFETIME_SECONDS
from app.transnational.schemas import (
    DueOut,
    EvidenceOut,
    ExchangeOut,
    ExchangePage,
    MessageOut,
    PublishedKey,
    PublishedKeys,
    QuarantineOut,
    RecordOut,
)


def _dues(
    exchange: Exchange, messages: list[ExchangeMessage], follow_ups_done: set[int], now: datetime
) -> list[DueOut]:
    out: list[DueOut] = []
    for m in messages:
        if m.direction == "outgoing" and m.state == "queued" and m.ack_due_at is not None:
            out.append(
                DueOut(kind="acknowledgement", due_at=m.ack_due_at, overdue=m.ack_due_at < now)
            )
    if (
        exchange.direction == "incoming"
        and exchange.status == "received"
        and exchange.decision_due_at
    ):
        out.append(
            DueOut(
                kind="decision",
                due_at=exchange.decision_due_at,
                overdue=exchange.decision_due_at < now,
            )
        )
    if exchange.status not in TERMINAL:
        kind = "follow_up_report" if exchange.direction == "incoming" else "follow_up_expected"
        for day, due in follow_up_schedule(exchange):
            if day not in follow_ups_done:
                out.append(DueOut(kind=kind, due_at=due, overdue=due < now, checkpoint_days=day))
    return sorted(out, key=lambda d: d.due_at)


def exchange_out(
    session: Session, exchange: Exchange, *, detail: bool, now: datetime | None = None
) -> ExchangeOut:
    moment = now or utcnow()
    partner = session.get(Partner, exchange.partner_id)
    messages = messages_of(session, exchange)
    records = records_of(session, exchange)
    done = {
        r.codes["checkpoint_days"]
        for r in records
        if r.kind == "follow_up" and isinstance(r.codes.get("checkpoint_days"), int)
    }
    return ExchangeOut(
        id=exchange.id,
        thread_id=exchange.thread_id,
        direction=exchange.direction,
        partner_id=exchange.partner_id,
        partner_country=partner.country if partner else "",
        partner_institution=partner.institution if partner else "",
        purpose=exchange.purpose,
        status=exchange.status,
        status_changed_at=exchange.status_changed_at,
        case_id=exchange.case_id,
        remote_case_reference=exchange.remote_case_reference,
        groups=list(exchange.groups),
        fields=list(exchange.fields),
        age_band=exchange.age_band,
        receiving_agency_id=exchange.receiving_agency_id,
        receiving_organisation_name=exchange.receiving_organisation_name,
        risk_level_local=exchange.risk_level_local,
        risk_level_partner=exchange.risk_level_partner,
        risk_finalised_at=exchange.risk_finalised_at,
        travel_on=exchange.travel_on,
        arrived_on=exchange.arrived_on,
        handed_over_at=exchange.handed_over_at,
        follow_up_checkpoints_days=list(exchange.follow_up_checkpoints_days),
        re_trafficking_reported_at=exchange.re_trafficking_reported_at,
        consent_withdrawn_at=exchange.consent_withdrawn_at,
        content_shredded=exchange.shredded_at is not None,
        created_at=exchange.created_at,
        due=_dues(exchange, messages, done, moment),
        messages=[MessageOut.model_validate(m, from_attributes=True) for m in messages]
        if detail
        else [],
        records=[RecordOut.model_validate(r, from_attributes=True) for r in records]
        if detail
        else [],
    )


def list_exchanges(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    direction: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> ExchangePage:
    """The focal point's outbox (outgoing) and inbox (incoming)."""
    require(ctx, actor, "handover.manage")
    if limit > ctx.settings.max_page_size:
        raise InvalidInput(f"limit must be at most {ctx.settings.max_page_size}")
    stmt = select(Exchange).where(visible_condition(actor))
    if direction:
        stmt = stmt.where(Exchange.direction == direction)
    if status:
        stmt = stmt.where(Exchange.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Exchange.status_changed_at.desc()).limit(limit).offset(offset)
    )
    now = utcnow()
    return ExchangePage(
        items=[exchange_out(session, e, detail=False, now=now) for e in rows], total=total
    )


def get_exchange(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID
) -> ExchangeOut:
    exchange = load_exchange(session, ctx, actor, exchange_id)
    if exchange.local_agency_id == actor.agency_id:
        require(ctx, actor, "handover.manage")
    elif not ctx.policy.can(actor.role, "case.create"):
        raise Forbidden("your role may not see this thread")
    return exchange_out(session, exchange, detail=True)


def evidence(
    session: Session, ctx: AppContext, actor: Actor, evidence_id: uuid.UUID
) -> EvidenceOut:
    """The signed token verbatim, with its signature checked again now against the pinned key
    (or our own key, for what we signed)."""
    row = session.get(Evidence, evidence_id)
    if row is None:
        raise NotFound()
    exchange = load_exchange(session, ctx, actor, row.exchange_id)
    require_focal_point(ctx, actor, exchange)
    if row.token_clear is not None:
        token = row.token_clear
    else:
        if exchange.shredded_at is not None:
            raise DataKeyShreddedError(f"exchange {exchange.id} content was shredded")
        opened = exchange_codec(session, ctx, exchange.id).open(
            "transnational_evidence", "token", row.id, row.token_sealed
        )
        token = str(opened)
    local = get_local(session)
    partner = session.get(Partner, exchange.partner_id)
    valid, key_status = False, "unknown"
    if local is not None and partner is not None:
        if row.kind in ("package_sent", "receipt_sent"):
            own = instance_keys(ctx)
            public, key_status = (
                (own.signing_public_pem, "own")
                if row.signing_kid == own.signing_kid
                else (None, "own_rotated")
            )
            audience = partner.instance_id
        else:
            key = partner_key(session, partner, "sig", row.signing_kid)
            public, key_status = (key.public_pem, key.status) if key else (None, "unknown")
            audience = local.instance_id
        if public is not None:
            try:
                # Evidence outlives its expiry: verify it as of the moment it was issued.
                issued = peek_claims(token).get("iat")
                verify_signed(
                    token,
                    public,
                    audience=audience,
                    issuer=row.issuer,
                    typ=row.typ,
                    max_lifetime_seconds=MAX_LIFETIME_SECONDS,
                    now=float(issued) if isinstance(issued, int) else None,
                )
                valid = True
            except PackageRefused:
                valid = False
    audit_exchange(
        session,
        actor,
        exchange,
        "transnational_evidence_read",
        entity_type="transnational_evidence",
        entity_id=row.id,
        fields=["token"],
        details={"kind": row.kind, "signature_valid": valid},
    )
    return EvidenceOut(
        id=row.id,
        exchange_id=row.exchange_id,
        kind=row.kind,
        typ=row.typ,
        msg_type=row.msg_type,
        issuer=row.issuer,
        jti=row.jti,
        signing_kid=row.signing_kid,
        sha256=row.sha256,
        created_at=row.created_at,
        token=token,
        signature_valid=valid,
        signing_key_status=key_status,
    )


def quarantine(
    session: Session, ctx: AppContext, actor: Actor, *, limit: int
) -> list[QuarantineOut]:
    if not (
        ctx.policy.can(actor.role, "agencies.manage")
        or ctx.policy.can(actor.role, "handover.manage")
    ):
        raise Forbidden("your role may not see quarantined packages")
    rows = session.scalars(
        select(QuarantinedPackage)
        .order_by(  # a row still counting a flood stays on top
            func.coalesce(
                QuarantinedPackage.last_received_at, QuarantinedPackage.received_at
            ).desc()
        )
        .limit(min(limit, 500))
    )
    return [
        QuarantineOut(
            id=r.id,
            received_at=r.received_at,
            reason_code=r.reason_code,
            reason=r.reason,
            partner_id=r.partner_id,
            claimed_issuer=r.claimed_issuer,
            claimed_kid=r.claimed_kid,
            claimed_jti=r.claimed_jti,
            claimed_typ=r.claimed_typ,
            size=r.size,
            sha256=r.sha256,
            body_kept=r.body is not None,
            content_type=r.content_type,
            source_address=r.source_address,
            repeat_count=r.repeat_count,
            last_received_at=r.last_received_at,
        )
        for r in rows
    ]


def published_keys(session: Session, ctx: AppContext) -> PublishedKeys:
    own = instance_keys(ctx)
    local = get_local(session)
    return PublishedKeys(
        instance_id=local.instance_id if local else None,
        keys=[
            PublishedKey(use="sig", alg="ES256", kid=own.signing_kid, pem=own.signing_public_pem),
            PublishedKey(
                use="enc", alg="RSA-OAEP-256", kid=own.encryption_kid, pem=own.encryption_public_pem
            ),
        ],
    )
