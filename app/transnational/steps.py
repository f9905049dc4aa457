"""Steps on a thread after the package: decisions, the joint return preparation, arrival,
hand-over, reintegration, follow-up reports and re-trafficking.

Each side acts on its own instance, through its own services and guards:

* the receiving country accepts (naming the organisation that will receive the person) or
  rejects with a reason code;
* both countries fill their part of the joint pre-return risk assessment; the sending
  country finalises it (refused while either part says ``high``), which records the
  workflow's ``pre_return_risk`` assessment; it also confirms the receiving organisation
  the partner named (the workflow's ``receiving_organisation`` assessment);
* travel can be arranged only when the sending case would pass every hand-over guard, so
  no one travels before the receiving organisation is confirmed;
* on arrival, a user of the receiving organisation opens the local case from the package
  (registered through the case service: a new victim record under a new data key), placed
  in ``reintegration_monitoring`` and shared with the focal point;
* the sending focal point then fires ``confirm_return_handover`` on its own case;
* the receiving focal point records the reintegration plan and allowance, reports at the
  follow-up checkpoints (with the person's consent to report back), and reports
  re-trafficking, which re-opens detection on its case and alerts the sending country.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.audit import service as audit
from app.auth.actor import Actor
from app.cases import service as cases
from app.cases import transitions
from app.cases.models import Case
from app.cases.schemas import CaseFields, DetectionIn, RegistrationIn, VictimFields
from app.cases.schemas import ReferralIn as CaseShareIn
from app.cases.service import load_case, require
from app.cases.workflow import Event, Refused, Role, Stage, TransitionRequest, decide
from app.context import AppContext
from app.crypto.jose_strict import peek_claims
from app.db.base import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.transnational.dataset import check_consent, extract, valid_consents
from app.transnational.exchanges import (
    add_record,
    audit_exchange,
    load_exchange,
    queue_message,
    records_of,
    require_direction,
    require_focal_point,
    require_open,
    set_status,
)
from app.transnational.keys import exchange_codec, shred_exchange_key
from app.transnational.models import Attachment, Evidence, Exchange, Partner
from app.transnational.protocol import (
    AcceptedBody,
    ArrivalConfirmedBody,
    FollowUpBody,
    FollowUpData,
    HandoverConfirmedBody,
    LogisticsBody,
    ReceivingOrganisation,
    ReferralBody,
    RejectedBody,
    ReTraffickingBody,
    RiskAssessmentBody,
    StatusBody,
    parse_envelope,
)
from app.transnational.schemas import (
    AcceptIn,
    ActionOut,
    ArrivalIn,
    FollowUpIn,
    LogisticsIn,
    PackageOut,
    ReintegrationIn,
    RejectIn,
    ReTraffickingIn,
    RiskPartIn,
    StatusIn,
)
from app.transnational.vocab import (
    RECEIVING_AGENCY_TYPES,
    MessageType,
    PackagePurpose,
    RiskLevel,
    StatusCode,
)

_RETURN_PURPOSES = frozenset({"return_preparation", "case_management_handover"})


def _out(exchange: Exchange, **extra: Any) -> ActionOut:
    return ActionOut(exchange_id=exchange.id, status=exchange.status, **extra)


def _partner(session: Session, exchange: Exchange) -> Partner:
    partner = session.get(Partner, exchange.partner_id)
    if partner is None:
        raise NotFound()
    return partner


def _linked_case(session: Session, ctx: AppContext, actor: Actor, exchange: Exchange) -> Case:
    if exchange.case_id is None:
        raise Conflict("this thread has no local case yet", code="no_local_case")
    return load_case(session, ctx, actor, exchange.case_id, lock=True)


def _check_version(case: Case, expected_version: int) -> None:
    if case.version != expected_version:
        from app.errors import StaleVersion

        raise StaleVersion(
            f"this case changed since you loaded it (version {case.version}); reload and try again"
        )


def _referral(
    session: Session, ctx: AppContext, exchange: Exchange
) -> tuple[Evidence, ReferralBody]:
    """The verified referral package of an incoming thread, opened from its sealed evidence."""
    if exchange.shredded_at is not None:
        from app.crypto.errors import DataKeyShreddedError

        raise DataKeyShreddedError(f"exchange {exchange.id} content was shredded")
    evidence = session.scalars(
        select(Evidence).where(
            Evidence.exchange_id == exchange.id,
            Evidence.kind == "package_received",
            Evidence.msg_type == "referral",
        )
    ).one()
    codec = exchange_codec(session, ctx, exchange.id)
    token = codec.open("transnational_evidence", "token", evidence.id, evidence.token_sealed)
    _, body = parse_envelope(peek_claims(token), evidence.typ)  # verified when it arrived
    assert isinstance(body, ReferralBody)
    return evidence, body


# -- receiving country: review and decide ----------------------------------------------------
def package_content(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID
) -> PackageOut:
    exchange = load_exchange(session, ctx, actor, exchange_id)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    evidence, body = _referral(session, ctx, exchange)
    data = body.data.model_dump(mode="json")
    audit_exchange(
        session,
        actor,
        exchange,
        "fields_read",
        entity_type="transnational_evidence",
        entity_id=evidence.id,
        fields=[*data["victim"], *data["case"]],
        details={"purpose": "transnational_review"},
    )
    attachments = session.scalars(
        select(Attachment).where(Attachment.exchange_id == exchange.id)
    ).all()
    return PackageOut(
        exchange_id=exchange.id,
        purpose=str(body.purpose),
        sender=body.sender.model_dump(mode="json"),
        consent=[c.model_dump(mode="json") for c in body.consent],
        groups=list(body.groups),
        context=body.context.model_dump(mode="json"),
        data=data,
        attachments=[
            {"id": str(a.id), "media_type": a.media_type, "size": a.size, "sha256": a.sha256}
            for a in attachments
        ],
        evidence_id=evidence.id,
    )


def attachment_content(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    exchange_id: uuid.UUID,
    attachment_id: uuid.UUID,
) -> tuple[str, bytes]:
    exchange = load_exchange(session, ctx, actor, exchange_id)
    require_focal_point(ctx, actor, exchange)
    row = session.get(Attachment, attachment_id)
    if row is None or row.exchange_id != exchange.id:
        raise NotFound()
    codec = exchange_codec(session, ctx, exchange.id)
    content = codec.open("transnational_attachments", "content", row.id, row.content)
    audit_exchange(
        session,
        actor,
        exchange,
        "transnational_attachment_read",
        entity_type="transnational_attachment",
        entity_id=row.id,
        details={"media_type": row.media_type},
    )
    if not isinstance(content, str):
        raise Conflict("attachment content is unreadable")
    return row.media_type, base64.b64decode(content)


def accept(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: AcceptIn
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    organisation = None
    if data.receiving_agency_id is not None:
        agency = session.get(Agency, data.receiving_agency_id)
        if agency is None or not agency.is_active or agency.type not in RECEIVING_AGENCY_TYPES:
            raise InvalidInput("the receiving organisation must be an active NGO or social service")
        exchange.receiving_agency_id = agency.id
        organisation = ReceivingOrganisation(name=agency.name, type=agency.type)
    elif exchange.purpose in _RETURN_PURPOSES:
        raise InvalidInput("name the organisation that will receive the person")
    now = utcnow()
    set_status(exchange, "accepted", ("received",), now=now)
    exchange.decided_at = now
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.accepted,
        AcceptedBody(receiving_organisation=organisation),
        now=now,
    )
    return _out(exchange, message_id=message.id, partner_notified=True)


def reject(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: RejectIn
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    now = utcnow()
    set_status(exchange, "rejected", ("received",), now=now)
    exchange.decided_at, exchange.decision_reason = now, str(data.reason_code)
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.rejected,
        RejectedBody(reason_code=data.reason_code),
        now=now,
        audit_details={"reason_code": str(data.reason_code)},
    )
    # No purpose remains for the person's data here: the content is crypto-shredded; the
    # hashes, receipts and audit trail stay.
    shred_exchange_key(session, exchange.id)
    exchange.shredded_at = now
    audit_exchange(
        session, actor, exchange, "transnational_content_shredded", details={"reason": "rejected"}
    )
    return _out(exchange, message_id=message.id, partner_notified=True)


def send_status(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: StatusIn
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_open(exchange)
    now = utcnow()
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.status,
        StatusBody(code=data.code),
        consent_ids=exchange.consent_ids if exchange.direction == "outgoing" else (),
        now=now,
        audit_details={"code": str(data.code)},
    )
    add_record(
        session,
        ctx,
        exchange,
        kind="status",
        side="local",
        codes={"code": str(data.code)},
        message_id=message.id,
        author_id=actor.user_id,
        now=now,
    )
    if data.code == StatusCode.closed:
        set_status(exchange, "closed", (exchange.status,), now=now)
    return _out(exchange, message_id=message.id, partner_notified=True)


# -- joint return preparation ------------------------------------------------------------------
def record_risk_part(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: RiskPartIn
) -> ActionOut:
    """This side's part of the joint pre-return risk assessment, shared with the partner."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    if exchange.purpose not in _RETURN_PURPOSES:
        raise Conflict("a pre-return risk assessment belongs to a return", code="wrong_purpose")
    allowed = (
        ("delivered", "accepted", "travel_arranged")
        if exchange.direction == "outgoing"
        else ("received", "accepted", "travel_arranged")
    )
    now = utcnow()
    set_status(exchange, exchange.status, allowed, now=now)
    exchange.risk_level_local = str(data.risk_level)
    exchange.risk_finalised_at = None
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.risk_assessment,
        RiskAssessmentBody(risk_level=data.risk_level, assessment=data.assessment),
        consent_ids=exchange.consent_ids if exchange.direction == "outgoing" else (),
        now=now,
        audit_details={"risk_level": str(data.risk_level)},
    )
    add_record(
        session,
        ctx,
        exchange,
        kind="risk_assessment",
        side="local",
        codes={"risk_level": str(data.risk_level)},
        text=data.assessment,
        message_id=message.id,
        author_id=actor.user_id,
        now=now,
    )
    return _out(exchange, message_id=message.id, partner_notified=True)


def finalise_risk(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, expected_version: int
) -> ActionOut:
    """Both parts in, neither high: record the workflow's pre-return risk assessment."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "outgoing")
    require_open(exchange)
    if exchange.risk_level_local is None or exchange.risk_level_partner is None:
        raise Conflict(
            "the joint assessment needs both parts: ours and the partner's",
            code="risk_part_missing",
        )
    if RiskLevel.high in (exchange.risk_level_local, exchange.risk_level_partner):
        raise Conflict(
            "a part of the joint assessment rates the risk high; return cannot proceed until it "
            "is reassessed",
            code="risk_too_high",
        )
    case = _linked_case(session, ctx, actor, exchange)
    _check_version(case, expected_version)
    codec = exchange_codec(session, ctx, exchange.id)
    parts = {}
    for record in records_of(session, exchange, "risk_assessment"):
        parts[record.side] = (
            record.codes.get("risk_level"),
            codec.open("transnational_records", "body", record.id, record.body),
        )
    local, partner_part = parts["local"], parts["partner"]
    partner = _partner(session, exchange)
    body = (
        f"Joint pre-return risk assessment (transnational thread {exchange.thread_id}).\n"
        f"Sending country part, risk {local[0]}: {local[1]}\n"
        f"{partner.institution} ({partner.country}) part, risk {partner_part[0]}: {partner_part[1]}"
    )
    case = transitions.record_assessment(
        session, ctx, actor, case.id, "pre_return_risk", body[:20000], case.version
    )
    now = utcnow()
    exchange.risk_finalised_at = now
    exchange.version += 1
    audit_exchange(
        session,
        actor,
        exchange,
        "transnational_joint_risk_finalised",
        details={"local": local[0], "partner": partner_part[0]},
    )
    return _out(exchange, case_id=case.id, case_version=case.version)


def confirm_receiving_organisation(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, expected_version: int
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "outgoing")
    if (
        exchange.status not in ("accepted", "travel_arranged")
        or not exchange.receiving_organisation_name
    ):
        raise Conflict(
            "the partner has not accepted the referral naming a receiving organisation",
            code="not_accepted",
        )
    case = _linked_case(session, ctx, actor, exchange)
    _check_version(case, expected_version)
    partner = _partner(session, exchange)
    body = (
        f"Receiving organisation confirmed through the transnational referral mechanism: "
        f"{exchange.receiving_organisation_name} ({exchange.receiving_organisation_type}), named by "
        f"{partner.institution} ({partner.country}) on thread {exchange.thread_id}."
    )
    case = transitions.record_assessment(
        session, ctx, actor, case.id, "receiving_organisation", body, case.version
    )
    return _out(exchange, case_id=case.id, case_version=case.version)


def _handover_refusal(
    session: Session, ctx: AppContext, actor: Actor, case: Case
) -> Refused | None:
    if actor.user_id is None or actor.role not in Role.__members__:
        raise Forbidden("only people can arrange a return")
    now = utcnow()
    facts = transitions.case_facts(
        session, ctx, case, actor=actor, event=Event.confirm_return_handover, now=now
    )
    request = TransitionRequest(
        Event.confirm_return_handover,
        actor.user_id,
        Role(actor.role),
        reason=None,
        legal_basis=None,
    )
    outcome = decide(Stage(case.stage), request, facts)
    return outcome if isinstance(outcome, Refused) else None


def send_logistics(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: LogisticsIn
) -> ActionOut:
    """Travel and escort: only once the case would pass every hand-over guard."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "outgoing")
    case = _linked_case(session, ctx, actor, exchange)
    refused = _handover_refusal(session, ctx, actor, case)
    if refused is not None:
        raise Conflict(
            f"travel can be arranged only when the hand-over could be confirmed: {refused.message}",
            code=refused.code,
        )
    now = utcnow()
    set_status(exchange, "travel_arranged", ("accepted", "travel_arranged"), now=now)
    exchange.travel_on = data.travel_on
    body = LogisticsBody.model_validate(data.model_dump())
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.logistics,
        body,
        consent_ids=exchange.consent_ids,
        now=now,
        audit_details={"mode": str(data.mode), "escort": data.escort},
    )
    add_record(
        session,
        ctx,
        exchange,
        kind="logistics",
        side="local",
        codes={"mode": str(data.mode), "escort": data.escort},
        text=body.model_dump(mode="json"),
        message_id=message.id,
        author_id=actor.user_id,
        now=now,
    )
    return _out(exchange, message_id=message.id, partner_notified=True)


def confirm_handover(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, expected_version: int
) -> ActionOut:
    """After the partner confirmed arrival: fire confirm_return_handover on our case."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "outgoing")
    if exchange.status != "arrived":
        raise Conflict(
            "the receiving country has not confirmed the person's arrival", code="not_arrived"
        )
    case = _linked_case(session, ctx, actor, exchange)
    case = transitions.transition(
        session,
        ctx,
        actor,
        case.id,
        transitions.TransitionInput(
            event=Event.confirm_return_handover,
            legal_basis="CETS 197 Art. 16; transnational referral",
        ),
        expected_version,
    )
    now = utcnow()
    exchange.handed_over_at = now
    checkpoints = list(ctx.profile(case.country_profile).return_follow_up_checkpoints_days)
    exchange.follow_up_checkpoints_days = checkpoints
    set_status(exchange, "handed_over", ("arrived",), now=now)
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.handover_confirmed,
        HandoverConfirmedBody(follow_up_checkpoints_days=checkpoints),
        consent_ids=exchange.consent_ids,
        now=now,
    )
    return _out(
        exchange,
        case_id=case.id,
        case_version=case.version,
        message_id=message.id,
        partner_notified=True,
    )


# -- receiving country: arrival, reintegration, follow-up ------------------------------------------
def confirm_arrival(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: ArrivalIn
) -> ActionOut:
    """The receiving organisation meets the person and opens its case from the package."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_direction(exchange, "incoming")
    require(ctx, actor, "case.create")
    if exchange.receiving_agency_id is None or exchange.receiving_agency_id != actor.agency_id:
        raise Forbidden("only the organisation named to receive the person confirms arrival")
    now = utcnow()
    set_status(exchange, "arrived", ("accepted", "travel_arranged"), now=now)
    evidence, body = _referral(session, ctx, exchange)
    registration = RegistrationIn(
        victim=VictimFields.model_validate(body.data.victim),
        case=CaseFields.model_validate(body.data.case),
        detection=DetectionIn(detected_on=data.arrived_on, detecting_org_type="other"),
    )
    case = cases.register(session, ctx, actor, registration)
    if case.age_band == "unknown" and body.context.age_band != "unknown":
        case.age_band = body.context.age_band
    case.classification = str(body.context.classification)
    arrived_at = datetime.combine(data.arrived_on, time(12, 0), tzinfo=UTC)
    previous = case.stage
    # The imported case starts where the person is: monitored after return (CETS 197 16(5)).
    case.stage = str(Stage.reintegration_monitoring)
    case.stage_entered_at = now
    case.returned_at = min(arrived_at, now)
    case.version += 1
    transitions.refresh_next_due(ctx, case, now)
    partner = _partner(session, exchange)
    audit.record(
        session,
        actor,
        "case_opened_from_transnational_handover",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="transnational_evidence",
        entity_id=evidence.id,
        fields=exchange.fields,
        details={
            "from": previous,
            "to": case.stage,
            "evidence_id": str(evidence.id),
            "version": case.version,
            "exchange_id": str(exchange.id),
            "thread_id": str(exchange.thread_id),
            "partner_id": str(partner.id),
            "package_jti": evidence.jti,
            "sha256": evidence.sha256,
            "legal_basis": "CETS 197 Art. 16(5)",
        },
    )
    for earlier in session.scalars(
        select(Evidence).where(
            Evidence.exchange_id == exchange.id,
            Evidence.kind == "package_received",
            Evidence.id != evidence.id,
        )
    ):
        audit.record(
            session,
            actor,
            "transnational_evidence_linked",
            case_id=case.id,
            entity_type="transnational_evidence",
            entity_id=earlier.id,
            details={
                "evidence_id": str(earlier.id),
                "msg_type": earlier.msg_type,
                "jti": earlier.jti,
                "sha256": earlier.sha256,
            },
        )
    cases.refer(
        session,
        ctx,
        actor,
        case.id,
        CaseShareIn(
            agency_id=exchange.local_agency_id,
            access_role="focal_point",
            purpose="Transnational referral: follow-up reports to the sending country",
        ),
    )
    exchange.case_id = case.id
    exchange.arrived_on = data.arrived_on
    exchange.follow_up_checkpoints_days = list(
        ctx.profile(case.country_profile).return_follow_up_checkpoints_days
    )
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.arrival_confirmed,
        ArrivalConfirmedBody(arrived_on=data.arrived_on, case_reference=case.reference),
        now=now,
    )
    return _out(
        exchange,
        case_id=case.id,
        case_version=case.version,
        message_id=message.id,
        partner_notified=True,
    )


def record_reintegration(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    exchange_id: uuid.UUID,
    data: ReintegrationIn,
    expected_version: int,
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    if exchange.status not in ("arrived", "monitoring"):
        raise Conflict("the person has not arrived yet", code="not_arrived")
    case = _linked_case(session, ctx, actor, exchange)
    _check_version(case, expected_version)
    case = transitions.record_assessment(
        session, ctx, actor, case.id, "reintegration_plan", data.plan, case.version
    )
    now = utcnow()
    if data.allowance_amount is not None:
        if data.allowance_currency is None:
            raise InvalidInput("give the allowance currency (ISO 4217, e.g. EUR)")
        add_record(
            session,
            ctx,
            exchange,
            kind="allowance",
            side="local",
            codes={"currency": data.allowance_currency},
            text={
                "amount": data.allowance_amount,
                "currency": data.allowance_currency,
                "schedule": data.allowance_schedule,
            },
            author_id=actor.user_id,
            now=now,
        )
        audit_exchange(
            session,
            actor,
            exchange,
            "reintegration_allowance_recorded",
            details={"currency": data.allowance_currency},
        )
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.status,
        StatusBody(code=StatusCode.reintegration_plan_in_place),
        now=now,
        audit_details={"code": str(StatusCode.reintegration_plan_in_place)},
    )
    return _out(
        exchange,
        case_id=case.id,
        case_version=case.version,
        message_id=message.id,
        partner_notified=True,
    )


def _report_consents(
    session: Session, exchange: Exchange, case: Case
) -> tuple[list[str], list[str]]:
    """Consents (here) to report back to the sending country, and the groups they allow."""
    partner = session.get(Partner, exchange.partner_id)
    if partner is None:
        return [], []
    today = utcnow().date()
    consents = valid_consents(
        session, case, partner.agency_id, {"data_sharing_transnational"}, today
    )
    check = check_consent(
        session, case, partner.agency_id, PackagePurpose.post_return_follow_up, today
    )
    return [str(c.id) for c in consents], check.groups


def send_follow_up(
    session: Session, ctx: AppContext, actor: Actor, exchange_id: uuid.UUID, data: FollowUpIn
) -> ActionOut:
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    if exchange.status not in ("arrived", "monitoring"):
        raise Conflict("follow-up reports start after arrival", code="not_arrived")
    if data.checkpoint_days not in exchange.follow_up_checkpoints_days:
        raise InvalidInput(
            "that is not one of the agreed checkpoints: "
            + ", ".join(str(d) for d in exchange.follow_up_checkpoints_days)
        )
    case = _linked_case(session, ctx, actor, exchange)
    consent_ids, groups = _report_consents(session, exchange, case)
    if not consent_ids:
        raise Conflict(
            "the person has not consented to reports to the sending country",
            code="consent_required",
        )
    from app.cases import repository as case_repo

    victim = case_repo.get_victim(session, case.victim_id)
    payload: dict[str, Any] = {"case": {}}
    if groups and victim is not None and victim.erased_at is None:
        codec = ctx.keys.codec_for(session, case.victim_id)
        payload = {"case": extract(codec, victim, case, groups)["case"]}
    now = utcnow()
    body = FollowUpBody(
        checkpoint_days=data.checkpoint_days,
        status=data.status,
        summary=data.summary,
        groups=groups,
        data=FollowUpData(case=payload["case"]),
    )
    message = queue_message(
        session,
        ctx,
        actor,
        exchange,
        MessageType.follow_up,
        body,
        consent_ids=consent_ids,
        fields=list(payload["case"]),
        now=now,
        audit_details={"checkpoint_days": data.checkpoint_days, "status": str(data.status)},
    )
    add_record(
        session,
        ctx,
        exchange,
        kind="follow_up",
        side="local",
        codes={"checkpoint_days": data.checkpoint_days, "status": str(data.status)},
        text={"summary": data.summary},
        message_id=message.id,
        author_id=actor.user_id,
        now=now,
    )
    set_status(exchange, "monitoring", ("arrived", "monitoring"), now=now)
    return _out(exchange, case_id=case.id, message_id=message.id, partner_notified=True)


def report_re_trafficking(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    exchange_id: uuid.UUID,
    data: ReTraffickingIn,
    expected_version: int,
) -> ActionOut:
    """Re-opens detection on our case (a new episode) and alerts the sending country when
    the person's consent to report back allows it."""
    exchange = load_exchange(session, ctx, actor, exchange_id, lock=True)
    require_focal_point(ctx, actor, exchange)
    require_direction(exchange, "incoming")
    case = _linked_case(session, ctx, actor, exchange)
    consent_ids, _ = _report_consents(session, exchange, case)
    case = transitions.transition(
        session,
        ctx,
        actor,
        case.id,
        transitions.TransitionInput(event=Event.report_re_trafficking, reason=data.reason),
        expected_version,
    )
    now = utcnow()
    exchange.re_trafficking_reported_at = now
    exchange.version += 1
    message_id = None
    if consent_ids:
        message = queue_message(
            session,
            ctx,
            actor,
            exchange,
            MessageType.re_trafficking,
            ReTraffickingBody(reported_on=now.date()),
            consent_ids=consent_ids,
            now=now,
        )
        message_id = message.id
    else:
        audit_exchange(
            session,
            actor,
            exchange,
            "transnational_partner_not_notified",
            details={"reason": "no_consent_to_report"},
        )
    return _out(
        exchange,
        case_id=case.id,
        case_version=case.version,
        message_id=message_id,
        partner_notified=message_id is not None,
    )
