"""Receiving from a partner instance: no cookie, no session; the package authenticates
itself with the sender's pinned key.

Pipeline (each step refuses with a reason code; a refused message is quarantined with the
code, the request's encrypted part kept as received, never imported, audited, raised as
an alert, and answered with the code):

0. at the edge, before the body is parsed (``app/transnational/edge.py``): its size
   (``oversize``, 413, refused on a declared Content-Length before anything is read, or
   while streaming) and its media type (``unsupported_media_type``, 415);
1. size and shape of the request (``oversize``, ``malformed``);
2. the JWE: allow-listed algorithms, no ``zip``, no ``jku``/``jwk``/``x5u``/``x5c``/``crit``,
   the content type, addressed to *our* key id, decrypts (``wrong_recipient_key``,
   ``undecryptable``, ...);
3. the inner JWS header, before any key is touched (``algorithm_not_allowed`` catches
   ``alg: none`` and HS256-with-a-public-key, ``forbidden_header``, ``wrong_type``);
4. the claimed sender must be in the directory and its ``kid`` pinned there
   (``unknown_sender``, ``unknown_signing_key``, ``key_revoked``, ``key_retired``);
5. the signature and claims: iss, aud (``wrong_audience``: not for us), iat, exp
   (``expired``), lifetime;
6. the content against the protocol and our own dataset rules (``invalid_content``,
   ``outside_consent``, ``outside_purpose``);
7. the package id: the identical signed token again is answered as a duplicate (idempotent),
   another token with a known id is ``replayed``;
8. attachments against the signed manifest (``attachment_mismatch``);
9. the thread and its state (``unknown_thread``, ``unexpected_message``).

Accepted messages are stored with the verified signed token verbatim (sealed) as evidence,
and answered with a signed receipt.

Floods: refusals are counted, not multiplied. Within a window (``QUARANTINE_WINDOW``) a
source (address, claimed partner, reason code) gets at most ``ROWS_PER_SOURCE`` rows of
its own; further refusals from it are counted on its latest row (``repeat_count``,
``last_received_at``). Across all sources, refusals from unauthenticated senders open at
most ``ANONYMOUS_ROWS_PER_WINDOW`` rows per window; past that, they are counted on the
latest row with the same reason code and claimed partner. The rest of ``ROWS_PER_WINDOW``
is kept for refusals whose signature verified against a key pinned for the partner; such a
refusal is only ever counted on a row of its own source, never merged into another's (past
the whole cap, each of its sources still gets one row). A new row is audited and raised as an alert; a counted repeat is audited when its count reaches
a power of two (2, 4, 8, ...), so the audit trail grows with the logarithm of a flood.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.cases.models import OutboxMessage
from app.context import AppContext
from app.crypto.jose_strict import (
    PackageRefused,
    check_signed_header,
    decrypt_typed,
    peek_claims,
    peek_header,
    verify_signed,
)
from app.db import rls
from app.db.base import utcnow
from app.logging import get_logger
from app.transnational.directory import get_local, partner_by_instance, partner_key
from app.transnational.exchanges import (
    CLEAR_EVIDENCE,
    DECISION_TARGET,
    EXCHANGE_ACTOR,
    QUARANTINE_ALERT_TOPIC,
    TERMINAL,
    add_record,
    audit_exchange,
)
from app.transnational.keys import (
    exchange_codec,
    instance_keys,
    new_exchange_key,
    shred_exchange_key,
)
from app.transnational.models import (
    Attachment,
    Evidence,
    Exchange,
    ExchangeMessage,
    LocalInstance,
    Partner,
    QuarantinedPackage,
)
from app.transnational.protocol import (
    CTY_ATTACHMENT,
    MAX_ATTACHMENT_TOKEN_BYTES,
    MAX_BODY_BYTES,
    MAX_LIFETIME_SECONDS,
    MAX_MESSAGE_TOKEN_BYTES,
    TYP_RECEIPT,
    TYP_REFERRAL,
    TYP_UPDATE,
    AcceptedBody,
    ArrivalConfirmedBody,
    ConsentWithdrawnBody,
    Envelope,
    FollowUpBody,
    HandoverConfirmedBody,
    LogisticsBody,
    ReferralBody,
    RejectedBody,
    ReTraffickingBody,
    RiskAssessmentBody,
    StatusBody,
    parse_envelope,
    parse_request_body,
    sha256_hex,
    sign_receipt,
)
from app.transnational.vocab import MessageType, StatusCode

log = get_logger("passage.transnational")

QUARANTINE_CHAIN = "transnational:quarantine"
STATUS_BY_REASON = {"replayed": 409, "oversize": 413, "unsupported_media_type": 415}

# Flood bounds (module docstring, docs/transnational.md).
QUARANTINE_WINDOW = timedelta(minutes=10)
ROWS_PER_SOURCE = 10
ROWS_PER_WINDOW = 100
# Of those, what refusals from unauthenticated senders may open: the rest is kept for
# refusals whose sender's signature verified against a pinned key.
ANONYMOUS_ROWS_PER_WINDOW = 80
# Serialises quarantine writes across workers on PostgreSQL (pg_advisory_xact_lock key).
_QUARANTINE_LOCK = 0x5051_7561_7261_6E74  # "PQuarant"

# Which message may arrive on which side of a thread, and in which thread states.
# Sending side (our thread is "outgoing"): the receiving partner answers.
_ON_OUTGOING: dict[MessageType, frozenset[str]] = {
    MessageType.accepted: frozenset({"queued", "delivered"}),
    MessageType.rejected: frozenset({"queued", "delivered"}),
    MessageType.status: frozenset(
        {
            "queued",
            "delivered",
            "accepted",
            "travel_arranged",
            "arrived",
            "handed_over",
            "monitoring",
        }
    ),
    MessageType.risk_assessment: frozenset({"delivered", "accepted", "travel_arranged"}),
    MessageType.arrival_confirmed: frozenset({"accepted", "travel_arranged"}),
    MessageType.follow_up: frozenset({"arrived", "handed_over", "monitoring"}),
    MessageType.re_trafficking: frozenset({"arrived", "handed_over", "monitoring"}),
}
# Receiving side (our thread is "incoming"): the sending partner continues.
_ON_INCOMING: dict[MessageType, frozenset[str]] = {
    MessageType.status: frozenset(
        {"received", "accepted", "travel_arranged", "arrived", "monitoring"}
    ),
    MessageType.risk_assessment: frozenset({"received", "accepted", "travel_arranged"}),
    MessageType.logistics: frozenset({"accepted", "travel_arranged"}),
    MessageType.handover_confirmed: frozenset({"arrived", "monitoring"}),
    MessageType.consent_withdrawn: frozenset(
        {"received", "accepted", "travel_arranged", "arrived", "monitoring"}
    ),
}


@dataclass
class Delivery:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _NotConfigured(Exception):
    """A genuine package for our key, but this instance has no exchange identity yet."""


RETRY_AFTER_SECONDS = 300


@dataclass
class _Seen:
    """What is known about a request so far, to describe it if it is refused."""

    size: int
    sha256: str | None
    token: str | None = None
    source_address: str | None = None
    content_type: str | None = None
    claimed_issuer: str | None = None
    claimed_kid: str | None = None
    claimed_jti: str | None = None
    claimed_typ: str | None = None
    # The claimed partner, looked up from the unverified `iss`: anyone able to encrypt to
    # our published key can name it. `verified` is set only once its signature has verified
    # against a key pinned for it (and the signed claims were accepted).
    partner: Partner | None = None
    verified: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Verified:
    partner: Partner
    envelope: Envelope
    body: BaseModel
    signed: str
    sha256: str
    signing_kid: str
    typ: str
    attachments: list[bytes]


def _short(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def source_address(host: str | None) -> str | None:
    """The peer address as the server saw it (uvicorn applies trusted proxy headers), kept
    only when it is an IP address."""
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def refuse_at_edge(
    session: Session,
    ctx: AppContext,
    *,
    code: str,
    message: str,
    size: int,
    sha256: str | None,
    content_type: str | None,
    source: str | None,
) -> Delivery:
    """Quarantine and audit a request refused before its body was parsed (edge.py): only
    its size, hash (if read whole), claimed media type and source address are kept."""
    rls.apply_system(session)
    seen = _Seen(size=size, sha256=sha256, source_address=source, content_type=content_type)
    return _quarantine(
        session, ctx, get_local(session), seen, PackageRefused(code, message), utcnow()
    )


def receive(
    session: Session,
    ctx: AppContext,
    raw: bytes,
    *,
    source: str | None = None,
    content_type: str | None = None,
) -> Delivery:
    """Handle one POST to /api/v1/exchange/messages inside the request's transaction."""
    rls.apply_system(session)  # an instance, not a user: audited as the exchange
    now = utcnow()
    seen = _Seen(
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        source_address=source,
        content_type=content_type,
    )
    # Checked only once the package has decrypted with our key: garbage is refused (and
    # quarantined) as such, whether or not the exchange identity is configured.
    local = get_local(session)
    try:
        verified, local = _verify(session, ctx, local, raw, seen, now)
        existing = session.scalars(
            select(ExchangeMessage).where(
                ExchangeMessage.issuer == verified.partner.instance_id,
                ExchangeMessage.jti == verified.envelope.jti,
            )
        ).first()
        if existing is not None:
            if existing.sha256 == verified.sha256:
                return _duplicate(session, ctx, local, verified, existing, now)
            raise PackageRefused(
                "replayed", "a different package with this id was already received"
            )
        with session.begin_nested():
            exchange, message = _apply(session, ctx, local, verified, now)
            receipt = _acknowledge(session, ctx, local, verified, exchange, message, now)
        return Delivery(200, {"receipt": receipt})
    except IntegrityError:
        # A concurrent delivery of the same id won the race: the sender retries and gets
        # the duplicate answer.
        return Delivery(
            503,
            {"error": {"code": "retry", "message": "Concurrent delivery; retry later."}},
            {"Retry-After": "5"},
        )
    except _NotConfigured:
        # Nothing is wrong with the package: the sender keeps it queued and retries.
        log.warning("transnational_delivery_before_configuration")
        return Delivery(
            503,
            {
                "error": {
                    "code": "exchange_not_configured",
                    "message": "This instance does not accept messages yet; retry later.",
                }
            },
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    except PackageRefused as refusal:
        return _quarantine(session, ctx, local, seen, refusal, now)


# -- verification ------------------------------------------------------------------------------
def _verify(
    session: Session,
    ctx: AppContext,
    local: LocalInstance | None,
    raw: bytes,
    seen: _Seen,
    now: datetime,
) -> tuple[_Verified, LocalInstance]:
    if len(raw) > MAX_BODY_BYTES:
        raise PackageRefused("oversize", "the request is larger than allowed")
    message_token, attachment_tokens = parse_request_body(raw)
    seen.token = message_token if len(message_token) <= MAX_MESSAGE_TOKEN_BYTES else None
    outer = peek_header(message_token)
    seen.claimed_kid = _short(outer.get("kid"), 100)
    seen.claimed_typ = _short(outer.get("cty"), 40)
    own = instance_keys(ctx)
    typ, plain = decrypt_typed(
        message_token,
        own.encryption_private_pem,
        typs=(TYP_REFERRAL, TYP_UPDATE),
        kid=own.encryption_kid,
        max_bytes=MAX_MESSAGE_TOKEN_BYTES,
    )
    if local is None:
        raise _NotConfigured()
    try:
        signed = plain.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PackageRefused("malformed", "the decrypted content is not a compact JWS") from exc
    header = peek_header(signed)
    claimed = peek_claims(signed)
    seen.claimed_issuer = _short(claimed.get("iss"), 200)
    seen.claimed_jti = _short(claimed.get("jti"), 100)
    seen.claimed_kid = _short(header.get("kid"), 100)
    seen.claimed_typ = _short(header.get("typ"), 40)
    if seen.claimed_issuer is not None:
        seen.partner = partner_by_instance(session, seen.claimed_issuer)
    # Refuse dangerous headers before any key is looked up or used.
    check_signed_header(header, typ)
    partner = seen.partner
    if partner is None:
        raise PackageRefused("unknown_sender", "the sender is not in the focal-point directory")
    if partner.status != "active":
        raise PackageRefused("partner_suspended", "the sender is suspended in the directory")
    kid = header.get("kid")
    key = partner_key(session, partner, "sig", kid) if isinstance(kid, str) else None
    if key is None:
        raise PackageRefused("unknown_signing_key", "the signing key is not pinned for the sender")
    if key.status == "revoked":
        raise PackageRefused("key_revoked", "the signing key was revoked")
    if key.status == "retired":
        raise PackageRefused("key_retired", "the signing key was retired")
    claims = verify_signed(
        signed,
        key.public_pem,
        audience=local.instance_id,
        issuer=partner.instance_id,
        typ=typ,
        max_lifetime_seconds=MAX_LIFETIME_SECONDS,
        now=now.timestamp(),
    )
    seen.verified = True  # from here on, a refusal comes from the authenticated partner
    envelope, body = parse_envelope(claims, typ)
    contents = _attachments(own.encryption_private_pem, own.encryption_kid, body, attachment_tokens)
    verified = _Verified(
        partner=partner,
        envelope=envelope,
        body=body,
        signed=signed,
        sha256=sha256_hex(signed),
        signing_kid=key.kid,
        typ=typ,
        attachments=contents,
    )
    return verified, local


def _attachments(private_pem: str, kid: str, body: BaseModel, tokens: list[str]) -> list[bytes]:
    manifest = body.attachments if isinstance(body, ReferralBody) else []
    if len(tokens) != len(manifest):
        raise PackageRefused(
            "attachment_mismatch", "the attachments do not match the signed manifest"
        )
    out = []
    for token, ref in zip(tokens, manifest, strict=True):
        _, content = decrypt_typed(
            token,
            private_pem,
            typs=(CTY_ATTACHMENT,),
            kid=kid,
            max_bytes=MAX_ATTACHMENT_TOKEN_BYTES,
        )
        if len(content) != ref.size or hashlib.sha256(content).hexdigest() != ref.sha256:
            raise PackageRefused(
                "attachment_mismatch", "an attachment differs from its signed digest"
            )
        out.append(content)
    return out


# -- applying ----------------------------------------------------------------------------------
def _thread(session: Session, partner: Partner, thread: uuid.UUID) -> Exchange | None:
    return session.scalars(
        select(Exchange)
        .where(Exchange.partner_id == partner.id, Exchange.thread_id == thread)
        .with_for_update()
    ).first()


def _apply(
    session: Session, ctx: AppContext, local: LocalInstance, v: _Verified, now: datetime
) -> tuple[Exchange, ExchangeMessage]:
    msg = v.envelope.msg
    if msg == MessageType.referral:
        assert isinstance(v.body, ReferralBody)
        if _thread(session, v.partner, v.envelope.thread) is not None:
            raise PackageRefused("invalid_content", "a referral for an existing thread")
        exchange = _open_incoming(session, ctx, local, v, v.body, now)
    else:
        found = _thread(session, v.partner, v.envelope.thread)
        if found is None:
            raise PackageRefused("unknown_thread", "no thread with this id exists with the sender")
        exchange = found
        table = _ON_OUTGOING if exchange.direction == "outgoing" else _ON_INCOMING
        allowed = table.get(msg)
        if allowed is None or exchange.status not in allowed:
            raise PackageRefused(
                "unexpected_message", "this message does not fit the thread's current state"
            )
    evidence = Evidence(
        exchange_id=exchange.id,
        kind="package_received",
        typ=v.typ,
        msg_type=str(msg),
        issuer=v.partner.instance_id,
        jti=v.envelope.jti,
        signing_kid=v.signing_kid,
        sha256=v.sha256,
        created_at=now,
    )
    if msg in CLEAR_EVIDENCE:
        evidence.token_clear = v.signed
    else:
        codec = exchange_codec(session, ctx, exchange.id)
        evidence.token_sealed = codec.seal("transnational_evidence", "token", evidence.id, v.signed)
    message = ExchangeMessage(
        exchange_id=exchange.id,
        direction="incoming",
        msg_type=str(msg),
        issuer=v.partner.instance_id,
        audience=local.instance_id,
        jti=v.envelope.jti,
        state="received",
        sha256=v.sha256,
        issued_at=datetime.fromtimestamp(v.envelope.iat, tz=now.tzinfo),
        expires_at=datetime.fromtimestamp(v.envelope.exp, tz=now.tzinfo),
        created_at=now,
        acknowledged_at=now,
        evidence_id=evidence.id,
    )
    session.add_all([evidence, message])
    session.flush()
    details = _HANDLERS[msg](session, ctx, exchange, v, message, now) if msg in _HANDLERS else {}
    audit_exchange(
        session,
        EXCHANGE_ACTOR,
        exchange,
        "transnational_message_received",
        entity_type="transnational_evidence",
        entity_id=evidence.id,
        fields=exchange.fields if msg == MessageType.referral else (),
        details={
            "msg_type": str(msg),
            "jti": v.envelope.jti,
            "sha256": v.sha256,
            "partner_id": str(v.partner.id),
            "signing_kid": v.signing_kid,
            **details,
        },
        occurred_at=now,
    )
    if msg == MessageType.consent_withdrawn and exchange.case_id is None:
        # Before the person is here, nothing of theirs may be kept: shred the content.
        shred_exchange_key(session, exchange.id)
        exchange.shredded_at = now
        audit_exchange(
            session,
            EXCHANGE_ACTOR,
            exchange,
            "transnational_content_shredded",
            details={"reason": "consent_withdrawn"},
            occurred_at=now,
        )
    return exchange, message


def _open_incoming(
    session: Session,
    ctx: AppContext,
    local: LocalInstance,
    v: _Verified,
    body: ReferralBody,
    now: datetime,
) -> Exchange:
    exchange = Exchange(
        thread_id=v.envelope.thread,
        direction="incoming",
        partner_id=v.partner.id,
        local_agency_id=local.focal_point_agency_id,
        purpose=str(body.purpose),
        status="received",
        status_changed_at=now,
        consent_ids=[str(c.id) for c in body.consent],
        groups=sorted(body.groups),
        fields=sorted([*body.data.victim, *body.data.case]),
        age_band=body.context.age_band,
        remote_case_reference=body.sender.case_reference,
        decision_due_at=now + DECISION_TARGET,
    )
    session.add(exchange)
    session.flush()
    codec = new_exchange_key(session, ctx, exchange.id)
    for ref, content in zip(body.attachments, v.attachments, strict=True):
        row = Attachment(
            exchange_id=exchange.id,
            message_jti=v.envelope.jti,
            direction="incoming",
            media_type=ref.media_type,
            size=ref.size,
            sha256=ref.sha256,
            created_at=now,
        )
        row.content = codec.seal(
            "transnational_attachments", "content", row.id, base64.b64encode(content).decode()
        )
        session.add(row)
    session.flush()
    return exchange


def _on_accepted(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, AcceptedBody)
    org = v.body.receiving_organisation
    ex.receiving_organisation_name = org.name if org else None
    ex.receiving_organisation_type = str(org.type) if org else None
    ex.decided_at = now
    _move(ex, "accepted", now)
    return {"receiving_organisation_type": ex.receiving_organisation_type}


def _on_rejected(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, RejectedBody)
    ex.decided_at, ex.decision_reason = now, str(v.body.reason_code)
    _move(ex, "rejected", now)
    return {"reason_code": ex.decision_reason}


def _on_status(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, StatusBody)
    add_record(
        session,
        ctx,
        ex,
        kind="status",
        side="partner",
        codes={"code": str(v.body.code)},
        message_id=m.id,
        now=now,
    )
    if v.body.code == StatusCode.closed:
        _move(ex, "closed", now)
    return {"code": str(v.body.code)}


def _on_risk(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, RiskAssessmentBody)
    ex.risk_level_partner = str(v.body.risk_level)
    ex.risk_finalised_at = None  # a new part reopens the joint assessment
    add_record(
        session,
        ctx,
        ex,
        kind="risk_assessment",
        side="partner",
        codes={"risk_level": str(v.body.risk_level)},
        text=v.body.assessment,
        message_id=m.id,
        now=now,
    )
    ex.version += 1
    return {"risk_level": str(v.body.risk_level)}


def _on_logistics(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, LogisticsBody)
    ex.travel_on = v.body.travel_on
    add_record(
        session,
        ctx,
        ex,
        kind="logistics",
        side="partner",
        codes={"mode": str(v.body.mode), "escort": v.body.escort},
        text=v.body.model_dump(mode="json"),
        message_id=m.id,
        now=now,
    )
    _move(ex, "travel_arranged", now)
    return {"mode": str(v.body.mode), "escort": v.body.escort}


def _on_arrival(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, ArrivalConfirmedBody)
    ex.arrived_on = v.body.arrived_on
    ex.remote_case_reference = v.body.case_reference
    _move(ex, "arrived", now)
    return {}


def _on_handover(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, HandoverConfirmedBody)
    ex.follow_up_checkpoints_days = sorted(set(v.body.follow_up_checkpoints_days))
    ex.handed_over_at = now
    _move(ex, "monitoring", now)
    return {"follow_up_checkpoints_days": ex.follow_up_checkpoints_days}


def _on_follow_up(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, FollowUpBody)
    codes = {"checkpoint_days": v.body.checkpoint_days, "status": str(v.body.status)}
    text = {"summary": v.body.summary, "data": v.body.data.model_dump(mode="json")}
    add_record(
        session,
        ctx,
        ex,
        kind="follow_up",
        side="partner",
        codes=codes,
        text=text,
        message_id=m.id,
        now=now,
    )
    _move(ex, "monitoring", now)
    return codes


def _on_re_trafficking(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, ReTraffickingBody)
    ex.re_trafficking_reported_at = now
    ex.version += 1
    add_record(
        session, ctx, ex, kind="re_trafficking", side="partner", codes={}, message_id=m.id, now=now
    )
    return {}


def _on_consent_withdrawn(
    session: Session, ctx: AppContext, ex: Exchange, v: _Verified, m: ExchangeMessage, now: datetime
) -> dict[str, Any]:
    assert isinstance(v.body, ConsentWithdrawnBody)
    ex.consent_withdrawn_at = now
    _move(ex, "consent_withdrawn", now)
    return {"consents": len(v.body.consent_ids)}


def _move(exchange: Exchange, status: str, now: datetime) -> None:
    if exchange.status != status:
        exchange.status = status
        exchange.status_changed_at = now
    exchange.version += 1


_HANDLERS = {
    MessageType.accepted: _on_accepted,
    MessageType.rejected: _on_rejected,
    MessageType.status: _on_status,
    MessageType.risk_assessment: _on_risk,
    MessageType.logistics: _on_logistics,
    MessageType.arrival_confirmed: _on_arrival,
    MessageType.handover_confirmed: _on_handover,
    MessageType.follow_up: _on_follow_up,
    MessageType.re_trafficking: _on_re_trafficking,
    MessageType.consent_withdrawn: _on_consent_withdrawn,
}


# -- answers -----------------------------------------------------------------------------------
def _acknowledge(
    session: Session,
    ctx: AppContext,
    local: LocalInstance,
    v: _Verified,
    exchange: Exchange,
    message: ExchangeMessage,
    now: datetime,
) -> str:
    own = instance_keys(ctx)
    receipt = sign_receipt(
        issuer=local.instance_id,
        audience=v.partner.instance_id,
        re=v.envelope.jti,
        thread=v.envelope.thread,
        status="received",
        sha256=v.sha256,
        reason=None,
        signing_private_pem=own.signing_private_pem,
        signing_kid=own.signing_kid,
        now=int(now.timestamp()),
    )
    evidence = Evidence(
        exchange_id=exchange.id,
        kind="receipt_sent",
        typ=TYP_RECEIPT,
        msg_type="receipt",
        issuer=local.instance_id,
        jti=str(peek_claims(receipt)["jti"]),
        signing_kid=own.signing_kid,
        sha256=sha256_hex(receipt),
        token_clear=receipt,
        created_at=now,
    )
    session.add(evidence)
    session.flush()
    message.receipt_evidence_id = evidence.id
    return receipt


def _duplicate(
    session: Session,
    ctx: AppContext,
    local: LocalInstance,
    v: _Verified,
    existing: ExchangeMessage,
    now: datetime,
) -> Delivery:
    """The same signed package again (a retry after a lost answer): nothing is imported
    twice; a fresh receipt says it was already received."""
    own = instance_keys(ctx)
    receipt = sign_receipt(
        issuer=local.instance_id,
        audience=v.partner.instance_id,
        re=v.envelope.jti,
        thread=v.envelope.thread,
        status="duplicate",
        sha256=v.sha256,
        reason=None,
        signing_private_pem=own.signing_private_pem,
        signing_kid=own.signing_kid,
        now=int(now.timestamp()),
    )
    exchange = session.get(Exchange, existing.exchange_id)
    if exchange is not None:
        audit_exchange(
            session,
            EXCHANGE_ACTOR,
            exchange,
            "transnational_duplicate_delivery",
            details={"jti": v.envelope.jti, "msg_type": existing.msg_type},
            occurred_at=now,
        )
    return Delivery(200, {"receipt": receipt, "duplicate": True})


def _serialise_quarantine(session: Session) -> None:
    """One quarantine write at a time across workers, so that counting and row caps hold.
    (SQLite serialises writers itself.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _QUARANTINE_LOCK})


def _counted_on(
    session: Session, seen: _Seen, code: str, now: datetime
) -> QuarantinedPackage | None:
    """The row this refusal is counted on, or None when it gets a row of its own.

    A source is (address, claimed partner, reason code). A refusal from an authenticated
    partner is only ever counted on a row of its own source: never on a row opened by
    another address, which anyone could have filled with refusals naming that partner."""
    since = now - QUARANTINE_WINDOW
    recent = (
        QuarantinedPackage.reason_code == code,
        QuarantinedPackage.received_at >= since,
        QuarantinedPackage.reviewed_at.is_(None),
    )
    partner_id = seen.partner.id if seen.partner else None
    same_partner = QuarantinedPackage.partner_id.is_not_distinct_from(partner_id)
    same_source = (
        *recent,
        same_partner,
        QuarantinedPackage.source_address.is_not_distinct_from(seen.source_address),
    )

    def latest(*where: Any) -> QuarantinedPackage | None:
        return session.scalars(
            select(QuarantinedPackage)
            .where(*where)
            .order_by(QuarantinedPackage.received_at.desc())
            .limit(1)
        ).first()

    own = session.scalar(select(func.count()).select_from(QuarantinedPackage).where(*same_source))
    if (own or 0) >= ROWS_PER_SOURCE:
        return latest(*same_source)
    opened = session.scalar(
        select(func.count())
        .select_from(QuarantinedPackage)
        .where(QuarantinedPackage.received_at >= since)
    )
    if seen.verified:
        # The reserve past the anonymous share is its own; past the whole cap, it is
        # counted on its source's latest row, or opens one (one per address and reason).
        return latest(*same_source) if (opened or 0) >= ROWS_PER_WINDOW else None
    if (opened or 0) >= ANONYMOUS_ROWS_PER_WINDOW:
        # None for a reason not seen yet in the window with this claimed partner (or
        # none): a row of its own.
        return latest(*recent, same_partner)
    return None


def _count_repeat(session: Session, row: QuarantinedPackage, now: datetime) -> None:
    session.execute(
        update(QuarantinedPackage)
        .where(QuarantinedPackage.id == row.id)
        .values(repeat_count=QuarantinedPackage.repeat_count + 1, last_received_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row, ["repeat_count", "last_received_at"])
    count = row.repeat_count
    if count & (count - 1) == 0:  # 2, 4, 8, ...: a flood shows, the trail stays small
        audit.record(
            session,
            EXCHANGE_ACTOR,
            "transnational_refusals_repeated",
            chain_key=QUARANTINE_CHAIN,
            entity_type="transnational_quarantine",
            entity_id=row.id,
            details={
                "reason_code": row.reason_code,
                "partner_id": str(row.partner_id) if row.partner_id else None,
                "repeat_count": count,
            },
            occurred_at=now,
        )
        log.warning(
            "transnational_refusals_repeated",
            reason_code=row.reason_code,
            quarantine_id=str(row.id),
            repeat_count=count,
        )


def _open_row(
    session: Session, seen: _Seen, refusal: PackageRefused, now: datetime
) -> QuarantinedPackage:
    row = QuarantinedPackage(
        received_at=now,
        reason_code=refusal.code,
        reason=str(refusal)[:300],
        partner_id=seen.partner.id if seen.partner else None,
        claimed_issuer=seen.claimed_issuer,
        claimed_kid=seen.claimed_kid,
        claimed_jti=seen.claimed_jti,
        claimed_typ=seen.claimed_typ,
        size=seen.size,
        sha256=seen.sha256,
        body=seen.token if refusal.code not in _NO_BODY else None,
        content_type=seen.content_type,
        source_address=seen.source_address,
        repeat_count=1,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        EXCHANGE_ACTOR,
        "transnational_package_quarantined",
        chain_key=QUARANTINE_CHAIN,
        entity_type="transnational_quarantine",
        entity_id=row.id,
        details={
            "reason_code": refusal.code,
            "partner_id": str(seen.partner.id) if seen.partner else None,
            "size": seen.size,
        },
        occurred_at=now,
    )
    session.add(
        OutboxMessage(
            topic=QUARANTINE_ALERT_TOPIC,
            payload={"quarantine_id": str(row.id), "reason_code": refusal.code},
            created_at=now,
        )
    )
    log.warning(
        "transnational_package_quarantined", reason_code=refusal.code, quarantine_id=str(row.id)
    )
    return row


_NO_BODY = frozenset({"oversize", "unsupported_media_type"})


def _quarantine(
    session: Session,
    ctx: AppContext,
    local: LocalInstance | None,
    seen: _Seen,
    refusal: PackageRefused,
    now: datetime,
) -> Delivery:
    _serialise_quarantine(session)
    row = _counted_on(session, seen, refusal.code, now)
    if row is not None:
        _count_repeat(session, row, now)
    else:
        row = _open_row(session, seen, refusal, now)
    receipt = None
    if seen.partner is not None and local is not None:
        own = instance_keys(ctx)
        receipt = sign_receipt(
            issuer=local.instance_id,
            audience=seen.partner.instance_id,
            re=seen.claimed_jti or "unknown",
            thread=None,
            status="refused",
            sha256=None,
            reason=refusal.code,
            signing_private_pem=own.signing_private_pem,
            signing_kid=own.signing_kid,
            now=int(now.timestamp()),
        )
    return Delivery(
        STATUS_BY_REASON.get(refusal.code, 422),
        {
            "error": {
                "code": "package_refused",
                "reason": refusal.code,
                "message": str(refusal),
                "quarantine_id": str(row.id),
            },
            "receipt": receipt,
        },
    )


__all__ = ["TERMINAL", "Delivery", "receive"]
