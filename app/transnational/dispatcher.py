"""The outbox dispatcher: delivers queued messages to partners and records their receipts;
turns consent withdrawals into stopped sending and a notice to the partner.

Run periodically (`passage exchange dispatch`) or from tests. Each delivery is three short
transactions: claim (re-checking consent and expiry, leasing the row), the HTTP request with
no transaction open, then recording the outcome. Deliveries are idempotent by package id, so
a crash between sending and recording only causes a retry that the partner answers as a
duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases.models import OutboxMessage
from app.context import AppContext
from app.crypto.jose_strict import PackageRefused, peek_header, verify_signed
from app.db.base import utcnow
from app.db.rls import system_session
from app.logging import get_logger
from app.transnational import transport
from app.transnational.directory import partner_key, require_local
from app.transnational.exchanges import (
    DELIVER_TOPIC,
    EXCHANGE_ACTOR,
    TERMINAL,
    audit_exchange,
    consents_still_valid,
    queue_message,
)
from app.transnational.keys import shred_exchange_key
from app.transnational.models import Evidence, Exchange, ExchangeMessage, Partner
from app.transnational.protocol import (
    RECEIPT_LIFETIME_SECONDS,
    TYP_RECEIPT,
    ConsentWithdrawnBody,
    ReceiptClaims,
    sha256_hex,
)
from app.transnational.vocab import MessageType

log = get_logger("passage.transnational")

WITHDRAWN_TOPIC = "consent.withdrawn"
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
FINAL_REFUSALS = frozenset({409, 413, 415, 422})


@dataclass
class DispatchReport:
    delivered: int = 0
    refused: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    withdrawals: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


SessionFactory = Callable[[], Session]


def dispatch(
    ctx: AppContext,
    sessionmaker: SessionFactory,
    *,
    client: httpx.Client | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> DispatchReport:
    report = DispatchReport()

    def open_session() -> Session:
        return system_session(sessionmaker())

    _withdrawals(ctx, open_session, report, limit=limit)
    own = client is None
    http = client or transport.make_client()
    try:
        with open_session() as session:
            ids = list(
                session.scalars(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.topic == DELIVER_TOPIC, OutboxMessage.processed_at.is_(None)
                    )
                    .order_by(OutboxMessage.created_at)
                    .limit(limit)
                )
            )
        for outbox_id in ids:
            _deliver_one(ctx, open_session, http, outbox_id, report, now)
    finally:
        if own:
            http.close()
    return report


# -- consent withdrawals -------------------------------------------------------------------------
def _withdrawals(
    ctx: AppContext, open_session: Callable[[], Session], report: DispatchReport, *, limit: int
) -> None:
    with open_session() as session, session.begin():
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.topic == WITHDRAWN_TOPIC, OutboxMessage.processed_at.is_(None))
            .order_by(OutboxMessage.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            report.withdrawals += handle_withdrawal(session, ctx, row.payload)
            row.processed_at = utcnow()


def handle_withdrawal(session: Session, ctx: AppContext, payload: dict[str, Any]) -> int:
    """Stop every open outgoing thread that relied on the withdrawn consent: queued messages
    are cancelled, and a partner that already holds the package is told."""
    try:
        case_id = uuid.UUID(str(payload["case_id"]))
        consent_id = str(uuid.UUID(str(payload["consent_id"])))
    except (KeyError, ValueError):
        return 0
    now = utcnow()
    affected = 0
    threads = session.scalars(
        select(Exchange)
        .where(Exchange.case_id == case_id, Exchange.direction == "outgoing")
        .with_for_update()
    ).all()
    for exchange in threads:
        if exchange.status in TERMINAL or consent_id not in exchange.consent_ids:
            continue
        affected += 1
        queued = session.scalars(
            select(ExchangeMessage).where(
                ExchangeMessage.exchange_id == exchange.id, ExchangeMessage.state == "queued"
            )
        ).all()
        partner_holds_data = exchange.status != "queued"
        for message in queued:
            message.state, message.token, message.attachment_tokens = "cancelled", None, None
            message.last_error = "consent_withdrawn"
        exchange.status = "consent_withdrawn"
        exchange.status_changed_at = now
        exchange.consent_withdrawn_at = now
        exchange.version += 1
        audit_exchange(
            session,
            EXCHANGE_ACTOR,
            exchange,
            "transnational_sending_stopped",
            details={
                "reason": "consent_withdrawn",
                "consent_id": consent_id,
                "cancelled": len(queued),
            },
        )
        if partner_holds_data:
            queue_message(
                session,
                ctx,
                EXCHANGE_ACTOR,
                exchange,
                MessageType.consent_withdrawn,
                ConsentWithdrawnBody(consent_ids=[uuid.UUID(consent_id)]),
                now=now,
            )
        else:
            # Never delivered: the partner holds nothing, our sealed copy goes too.
            shred_exchange_key(session, exchange.id)
            exchange.shredded_at = now
    return affected


# -- deliveries --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    message_id: uuid.UUID
    base_url: str
    token: str
    attachments: list[str]


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def _finish(
    session: Session, outbox: OutboxMessage, message: ExchangeMessage, state: str, now: datetime
) -> None:
    message.state = state
    message.token, message.attachment_tokens = None, None
    message.next_attempt_at = None
    outbox.processed_at = now


def _deliver_one(
    ctx: AppContext,
    open_session: Callable[[], Session],
    http: httpx.Client,
    outbox_id: uuid.UUID,
    report: DispatchReport,
    fixed_now: datetime | None,
) -> None:
    claimed = _claim(ctx, open_session, outbox_id, report, fixed_now)
    if claimed is None:
        return
    response: httpx.Response | None = None
    error: str | None = None
    try:
        response = transport.post_message(
            http, claimed.base_url, claimed.token, claimed.attachments
        )
    except httpx.HTTPError as exc:
        error = f"network:{type(exc).__name__}"[:60]
    _record(ctx, open_session, outbox_id, claimed, response, error, report, fixed_now)


def _claim(
    ctx: AppContext,
    open_session: Callable[[], Session],
    outbox_id: uuid.UUID,
    report: DispatchReport,
    fixed_now: datetime | None,
) -> _Claimed | None:
    with open_session() as session, session.begin():
        outbox = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .with_for_update(skip_locked=True)
        ).first()
        if outbox is None or outbox.processed_at is not None:
            return None
        now = fixed_now or utcnow()
        message = session.get(ExchangeMessage, uuid.UUID(str(outbox.payload.get("message_id"))))
        if message is None or message.state != "queued":
            outbox.processed_at = now
            return None
        if message.next_attempt_at is not None and message.next_attempt_at > now:
            return None
        exchange = session.get(Exchange, message.exchange_id)
        partner = session.get(Partner, exchange.partner_id) if exchange else None
        if exchange is None or partner is None:
            _finish(session, outbox, message, "failed", now)
            report.failed += 1
            return None
        if message.expires_at <= now:
            _finish(session, outbox, message, "expired", now)
            _undeliverable(session, exchange, message, "delivery_failed", now)
            report.failed += 1
            return None
        if not consents_still_valid(session, message.consent_ids, now.date()):
            _finish(session, outbox, message, "cancelled", now)
            message.last_error = "consent_no_longer_valid"
            audit_exchange(
                session,
                EXCHANGE_ACTOR,
                exchange,
                "transnational_message_cancelled",
                details={"jti": message.jti, "reason": "consent_no_longer_valid"},
                occurred_at=now,
            )
            report.cancelled += 1
            return None
        if partner.status != "active" or message.token is None:
            message.next_attempt_at = now + _backoff(message.attempts + 1)
            message.last_error = "partner_suspended"
            report.retrying += 1
            return None
        message.attempts += 1
        message.next_attempt_at = now + LEASE
        return _Claimed(
            message_id=message.id,
            base_url=partner.base_url,
            token=message.token,
            attachments=list(message.attachment_tokens or []),
        )


def _undeliverable(
    session: Session, exchange: Exchange, message: ExchangeMessage, status: str, now: datetime
) -> None:
    if message.msg_type == MessageType.referral and exchange.status == "queued":
        exchange.status = status
        exchange.status_changed_at = now
        exchange.version += 1


def _record(
    ctx: AppContext,
    open_session: Callable[[], Session],
    outbox_id: uuid.UUID,
    claimed: _Claimed,
    response: httpx.Response | None,
    error: str | None,
    report: DispatchReport,
    fixed_now: datetime | None,
) -> None:
    with open_session() as session, session.begin():
        outbox = session.get(OutboxMessage, outbox_id, with_for_update=True)
        message = session.get(ExchangeMessage, claimed.message_id, with_for_update=True)
        if outbox is None or message is None:
            return
        exchange = session.get(Exchange, message.exchange_id)
        assert exchange is not None
        partner = session.get(Partner, exchange.partner_id)
        assert partner is not None
        now = fixed_now or utcnow()
        message.sent_at = now
        body: dict[str, Any] = {}
        if response is not None:
            try:
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                body = {}
        if (
            response is not None
            and response.status_code == 200
            and isinstance(body.get("receipt"), str)
        ):
            problem = _accept_receipt(
                session, ctx, exchange, partner, message, body["receipt"], now
            )
            if problem is None:
                _finish(session, outbox, message, "delivered", now)
                message.acknowledged_at = now
                report.delivered += 1
                return
            error = problem
        elif (
            response is not None
            and response.status_code in FINAL_REFUSALS
            and isinstance(body.get("error"), dict)
        ):
            reason = str(body["error"].get("reason") or body["error"].get("code") or "refused")
            message.refusal_reason = "".join(ch for ch in reason if ch.isalnum() or ch == "_")[:40]
            _finish(session, outbox, message, "refused", now)
            _undeliverable(session, exchange, message, "refused_by_partner", now)
            audit_exchange(
                session,
                EXCHANGE_ACTOR,
                exchange,
                "transnational_message_refused",
                details={
                    "jti": message.jti,
                    "msg_type": message.msg_type,
                    "reason": message.refusal_reason,
                    "http_status": response.status_code,
                },
                occurred_at=now,
            )
            report.refused += 1
            return
        elif response is not None:
            error = f"http_{response.status_code}"
        message.last_error = (error or "unknown")[:60]
        if message.attempts >= MAX_ATTEMPTS:
            _finish(session, outbox, message, "failed", now)
            _undeliverable(session, exchange, message, "delivery_failed", now)
            audit_exchange(
                session,
                EXCHANGE_ACTOR,
                exchange,
                "transnational_delivery_failed",
                details={
                    "jti": message.jti,
                    "attempts": message.attempts,
                    "error": message.last_error,
                },
                occurred_at=now,
            )
            report.failed += 1
            report.problems.append(f"{message.jti}: {message.last_error}")
        else:
            message.next_attempt_at = now + _backoff(message.attempts)
            report.retrying += 1
            report.problems.append(f"{message.jti}: {message.last_error}")


def _accept_receipt(
    session: Session,
    ctx: AppContext,
    exchange: Exchange,
    partner: Partner,
    message: ExchangeMessage,
    receipt: str,
    now: datetime,
) -> str | None:
    """Verify the partner's signed receipt: their pinned key, for us, about this package,
    naming the exact signed token we sent. Returns a problem code, or None when stored."""
    local = require_local(session)
    try:
        kid = peek_header(receipt).get("kid")
        key = partner_key(session, partner, "sig", kid) if isinstance(kid, str) else None
        if key is None or key.status == "revoked":
            return "receipt_unknown_key"
        claims = ReceiptClaims.model_validate(
            verify_signed(
                receipt,
                key.public_pem,
                audience=local.instance_id,
                issuer=partner.instance_id,
                typ=TYP_RECEIPT,
                max_lifetime_seconds=RECEIPT_LIFETIME_SECONDS,
                now=now.timestamp(),
            )
        )
    except PackageRefused as refusal:
        return f"receipt_{refusal.code}"[:60]
    except ValueError:
        return "receipt_invalid_content"
    if claims.re != message.jti or claims.sha256 != message.sha256:
        return "receipt_mismatch"
    if claims.status not in ("received", "duplicate"):
        return "receipt_refused"
    evidence = Evidence(
        exchange_id=exchange.id,
        kind="receipt_received",
        typ=TYP_RECEIPT,
        msg_type="receipt",
        issuer=partner.instance_id,
        jti=claims.jti,
        signing_kid=key.kid,
        sha256=sha256_hex(receipt),
        token_clear=receipt,
        created_at=now,
    )
    session.add(evidence)
    session.flush()
    message.receipt_evidence_id = evidence.id
    if message.msg_type == MessageType.referral and exchange.status == "queued":
        exchange.status = "delivered"
        exchange.status_changed_at = now
        exchange.version += 1
    audit_exchange(
        session,
        EXCHANGE_ACTOR,
        exchange,
        "transnational_receipt_received",
        entity_type="transnational_evidence",
        entity_id=evidence.id,
        details={
            "jti": message.jti,
            "msg_type": message.msg_type,
            "receipt_status": claims.status,
            "sha256": message.sha256,
        },
        occurred_at=now,
    )
    return None
