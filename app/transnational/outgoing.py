"""Sending a referral: the consent check and preview, then the signed, encrypted package.

Sealed fields are decrypted only inside :func:`send_referral`, only for the groups the
consent and the purpose allow, and only to be signed into the package. The preview answers
the same question by name, without decrypting anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.cases import repository as case_repo
from app.cases.models import Case, Consent
from app.cases.service import load_case, require
from app.context import AppContext
from app.db.base import new_id, utcnow
from app.errors import Conflict, InvalidInput
from app.transnational.dataset import check_consent, extract, fields_with_values
from app.transnational.directory import encryption_key, get_local, require_local
from app.transnational.exchanges import TERMINAL, queue_message
from app.transnational.keys import exchange_codec, new_exchange_key
from app.transnational.models import Attachment, Exchange, Partner
from app.transnational.protocol import (
    MAX_ATTACHMENT_BYTES,
    AttachmentRef,
    ConsentRef,
    PackageContext,
    PackageData,
    ReferralBody,
    SenderInfo,
)
from app.transnational.schemas import AttachmentIn, PreviewOut, ReferralIn, ReferralQueued
from app.transnational.vocab import MessageType, PackagePurpose

_MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


def _partner(session: Session, partner_id: uuid.UUID) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise InvalidInput("no partner with that id in the focal-point directory")
    return partner


def _partner_problems(session: Session, partner: Partner) -> list[str]:
    problems = []
    if partner.status != "active":
        problems.append("partner_suspended")
    if encryption_key(session, partner) is None:
        problems.append("no_partner_encryption_key_pinned")
    if get_local(session) is None:
        problems.append("exchange_identity_not_configured")
    return problems


def preview(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    partner_id: uuid.UUID,
    purpose: PackagePurpose,
) -> PreviewOut:
    """Which fields would leave the country, by name, and whether the consent allows it."""
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "handover.manage")
    partner = _partner(session, partner_id)
    check = check_consent(session, case, partner.agency_id, purpose, utcnow().date())
    victim = case_repo.get_victim(session, case.victim_id)
    fields = fields_with_values(victim, case, check.groups)
    problems = check.problems + _partner_problems(session, partner)
    audit.record(
        session,
        actor,
        "transnational_package_previewed",
        case_id=case.id,
        details={
            "partner_id": str(partner.id),
            "purpose": str(purpose),
            "groups": check.groups,
            "consent_ok": not problems,
        },
    )
    return PreviewOut(
        case_id=case.id,
        partner_id=partner.id,
        purpose=str(purpose),
        consent_ok=not problems and bool(check.groups),
        problems=problems,
        consent_ids=check.consent_ids,
        groups=check.groups,
        fields=fields,
        excluded_groups=check.excluded,
        context={"age_band": case.age_band, "classification": case.classification},
    )


def _decode_attachment(item: AttachmentIn) -> bytes:
    try:
        content = base64.b64decode(item.content_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("an attachment is not valid base64") from exc
    if not content or len(content) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"each attachment must be at most {MAX_ATTACHMENT_BYTES // 1024} KiB")
    if not content.startswith(_MAGIC[item.media_type]):
        raise InvalidInput("an attachment's content does not match its declared type")
    return content


def send_referral(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, data: ReferralIn
) -> ReferralQueued:
    """Open a thread with a partner: build the minimal package the consent allows, sign it,
    encrypt it to the partner and queue it, with its audit event, in this transaction."""
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "handover.manage")
    if actor.agency_id is None:
        raise InvalidInput("only members of a focal-point agency can send referrals")
    local = require_local(session)
    partner = _partner(session, data.partner_id)
    problems = _partner_problems(session, partner)
    if problems:
        raise Conflict("the partner cannot receive now: " + ", ".join(problems), code=problems[0])
    now = utcnow()
    check = check_consent(session, case, partner.agency_id, data.purpose, now.date())
    if not check.ok:
        raise Conflict(
            "nothing may be sent: " + ", ".join(check.problems).replace("_", " "),
            code="consent_required",
        )
    if _open_thread_exists(session, case, partner, data.purpose):
        raise Conflict(
            "an open thread with this partner for this purpose already exists", code="open_thread"
        )
    victim = case_repo.get_victim(session, case.victim_id)
    if victim is None or victim.erased_at is not None:
        raise Conflict("this victim's record was erased")
    contents = [(item.media_type, _decode_attachment(item)) for item in data.attachments]

    codec = ctx.keys.codec_for(session, case.victim_id)
    payload = extract(codec, victim, case, check.groups)
    exchange = Exchange(
        thread_id=new_id(),
        direction="outgoing",
        partner_id=partner.id,
        local_agency_id=actor.agency_id,
        purpose=str(data.purpose),
        status="queued",
        status_changed_at=now,
        case_id=case.id,
        consent_ids=[str(c) for c in check.consent_ids],
        groups=check.groups,
        fields=sorted([*payload["victim"], *payload["case"]]),
        age_band=case.age_band,
    )
    session.add(exchange)
    session.flush()
    new_exchange_key(session, ctx, exchange.id)
    exchange_cipher = exchange_codec(session, ctx, exchange.id)
    attachments: list[tuple[Attachment, bytes]] = []
    for media_type, content in contents:
        row = Attachment(
            exchange_id=exchange.id,
            message_jti="",
            direction="outgoing",
            media_type=media_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        row.content = exchange_cipher.seal(
            "transnational_attachments", "content", row.id, base64.b64encode(content).decode()
        )
        session.add(row)
        attachments.append((row, content))
    consents = list(session.scalars(select(Consent).where(Consent.id.in_(check.consent_ids))))
    body = ReferralBody(
        purpose=data.purpose,
        sender=SenderInfo(
            country=local.country, institution=local.institution, case_reference=case.reference
        ),
        consent=[
            ConsentRef(
                id=c.id,
                purpose=c.purpose,
                scope=list(c.scope),
                given_on=c.given_on,
                expires_on=c.expires_on,
            )
            for c in consents
        ],
        groups=check.groups,
        context=PackageContext(
            age_band=case.age_band,
            classification=case.classification,
        ),
        data=PackageData(victim=payload["victim"], case=payload["case"]),
        attachments=[
            AttachmentRef(id=row.id, media_type=row.media_type, size=row.size, sha256=row.sha256)
            for row, _ in attachments
        ],
    )
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.referral,
        body,
        consent_ids=exchange.consent_ids,
        attachments=attachments,
        fields=exchange.fields,
        now=now,
        audit_details={"purpose": str(data.purpose), "groups": check.groups},
    )
    return ReferralQueued(
        exchange_id=exchange.id,
        thread_id=exchange.thread_id,
        message_id=message.id,
        jti=message.jti,
        status=exchange.status,
        groups=exchange.groups,
        fields=exchange.fields,
    )


def _open_thread_exists(
    session: Session, case: Case, partner: Partner, purpose: PackagePurpose
) -> bool:
    stmt = select(Exchange.id).where(
        Exchange.case_id == case.id,
        Exchange.partner_id == partner.id,
        Exchange.purpose == str(purpose),
        Exchange.direction == "outgoing",
        Exchange.status.not_in(sorted(TERMINAL)),
    )
    return session.scalars(stmt).first() is not None
