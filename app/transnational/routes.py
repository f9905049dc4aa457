"""Transnational referral: partner directory, signed and encrypted hand-overs (API, screens).

Two audiences:

* ``/api/v1/exchange/...``: other instances. No cookie and no session: a message
  authenticates itself with the sending instance's pinned signing key.
* ``/api/v1/transnational/...``: people (focal points, administrators, the receiving
  organisation), through the usual session or Bearer token, CSRF and scoping.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import CurrentActor
from app.cases.api import IfMatch, expected_version
from app.context import Ctx
from app.db.session import DbSession
from app.transnational import (
    classification,
    directory,
    edge,
    incoming,
    outgoing,
    reads,
    screens,
    steps,
)
from app.transnational.keys import instance_keys
from app.transnational.models import LocalInstance, Partner
from app.transnational.openapi import (
    ATTACHMENT_RESPONSES,
    EXCHANGE_REQUEST_BODY,
    EXCHANGE_RESPONSES,
    PUBLIC_RESPONSES,
    errors,
)
from app.transnational.protocol import MAX_BODY_BYTES
from app.transnational.schemas import (
    AcceptIn,
    ActionOut,
    ArrivalIn,
    ClassificationIn,
    ClassificationOut,
    ContactOut,
    EvidenceOut,
    ExchangeOut,
    ExchangePage,
    FollowUpIn,
    KeyFetchIn,
    KeyOut,
    KeyPinIn,
    KeyStatusIn,
    LocalInstanceIn,
    LocalInstanceOut,
    LogisticsIn,
    PackageOut,
    PartnerIn,
    PartnerOut,
    PartnerPatch,
    PreviewOut,
    PublishedKeys,
    QuarantineOut,
    ReferralIn,
    ReferralQueued,
    ReintegrationIn,
    RejectIn,
    ReTraffickingIn,
    RiskPartIn,
    StatusIn,
)
from app.transnational.vocab import PackagePurpose

router = APIRouter()
exchange = APIRouter(prefix="/api/v1/exchange", tags=["exchange (instance to instance)"])
api = APIRouter(prefix="/api/v1/transnational", tags=["transnational"])


# -- instance to instance ----------------------------------------------------------------------
@exchange.post(
    "/messages",
    response_model=None,
    responses=EXCHANGE_RESPONSES,
    openapi_extra=EXCHANGE_REQUEST_BODY,
)
async def receive_message(request: Request, session: DbSession, ctx: Ctx) -> JSONResponse:
    """Deliver one message (JWE) and its attachments as `application/json` (optionally
    `; charset=utf-8`), at most 800,000 bytes; answered with a signed receipt, or a refusal
    code (the message is quarantined; a body over the limit or of another media type too,
    by its size, hash, claimed media type and source address only)."""
    source = incoming.source_address(request.client.host if request.client else None)
    limit = min(MAX_BODY_BYTES, request.app.state.settings.max_body_bytes)
    read = await edge.read_body(request, limit)
    if isinstance(read, edge.EdgeRefusal):
        delivery = await run_in_threadpool(
            partial(
                incoming.refuse_at_edge,
                session,
                ctx,
                code=read.code,
                message=read.message,
                size=read.size,
                sha256=read.sha256,
                content_type=read.content_type,
                source=source,
            )
        )
    else:
        delivery = await run_in_threadpool(
            partial(
                incoming.receive,
                session,
                ctx,
                read.raw,
                source=source,
                content_type=read.content_type,
            )
        )
    return JSONResponse(delivery.body, status_code=delivery.status_code, headers=delivery.headers)


@exchange.get("/keys", response_model=PublishedKeys, responses=PUBLIC_RESPONSES)
def get_published_keys(session: DbSession, ctx: Ctx) -> PublishedKeys:
    """This instance's public keys, for partners to compare with the fingerprints given to
    them out of band before pinning."""
    return reads.published_keys(session, ctx)


# -- directory ---------------------------------------------------------------------------------
def _local_out(ctx: Ctx, local: LocalInstance) -> LocalInstanceOut:
    own = instance_keys(ctx)
    return LocalInstanceOut(
        instance_id=local.instance_id,
        country=local.country,
        institution=local.institution,
        focal_point_agency_id=local.focal_point_agency_id,
        signing_kid=own.signing_kid,
        encryption_kid=own.encryption_kid,
        updated_at=local.updated_at,
    )


@api.get("/instance", responses=errors(409), response_model=LocalInstanceOut)
def get_instance(actor: CurrentActor, session: DbSession, ctx: Ctx) -> LocalInstanceOut:
    directory.list_partners(session, ctx, actor)  # same read permission as the directory
    return _local_out(ctx, directory.require_local(session))


@api.put("/instance", responses=errors(), response_model=LocalInstanceOut)
def put_instance(
    data: LocalInstanceIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> LocalInstanceOut:
    return _local_out(ctx, directory.set_local(session, ctx, actor, data))


def _partner_out(session: Session, partner: Partner) -> PartnerOut:
    return PartnerOut(
        id=partner.id,
        agency_id=partner.agency_id,
        country=partner.country,
        institution=partner.institution,
        instance_id=partner.instance_id,
        base_url=partner.base_url,
        working_languages=list(partner.working_languages),
        last_verified_on=partner.last_verified_on,
        status=partner.status,
        contacts=[
            ContactOut.model_validate(c, from_attributes=True)
            for c in directory.contacts_of(session, partner)
        ],
        keys=[
            KeyOut.model_validate(k, from_attributes=True)
            for k in directory.keys_of(session, partner)
        ],
    )


@api.get("/partners", responses=errors(), response_model=list[PartnerOut])
def get_partners(actor: CurrentActor, session: DbSession, ctx: Ctx) -> list[PartnerOut]:
    return [_partner_out(session, p) for p in directory.list_partners(session, ctx, actor)]


@api.post("/partners", responses=errors(409), response_model=PartnerOut, status_code=201)
def post_partner(data: PartnerIn, actor: CurrentActor, session: DbSession, ctx: Ctx) -> PartnerOut:
    return _partner_out(session, directory.create_partner(session, ctx, actor, data))


@api.get("/partners/{partner_id}", responses=errors(404), response_model=PartnerOut)
def get_partner(
    partner_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> PartnerOut:
    return _partner_out(session, directory.get_partner(session, ctx, actor, partner_id))


@api.patch("/partners/{partner_id}", responses=errors(404), response_model=PartnerOut)
def patch_partner(
    partner_id: uuid.UUID, data: PartnerPatch, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> PartnerOut:
    return _partner_out(session, directory.update_partner(session, ctx, actor, partner_id, data))


@api.post(
    "/partners/{partner_id}/keys",
    responses=errors(404, 409),
    response_model=KeyOut,
    status_code=201,
)
def post_partner_key(
    partner_id: uuid.UUID, data: KeyPinIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> KeyOut:
    key = directory.pin_key(session, ctx, actor, partner_id, data)
    return KeyOut.model_validate(key, from_attributes=True)


@api.post(
    "/partners/{partner_id}/keys/fetch",
    responses=errors(404, 409),
    response_model=KeyOut,
    status_code=201,
)
def post_partner_key_fetch(
    partner_id: uuid.UUID, data: KeyFetchIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> KeyOut:
    key = directory.fetch_and_pin(session, ctx, actor, partner_id, data)
    return KeyOut.model_validate(key, from_attributes=True)


@api.post(
    "/partners/{partner_id}/keys/{kid}/status", responses=errors(404, 409), response_model=KeyOut
)
def post_partner_key_status(
    partner_id: uuid.UUID,
    kid: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")],
    data: KeyStatusIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> KeyOut:
    key = directory.set_key_status(session, ctx, actor, partner_id, kid, data)
    return KeyOut.model_validate(key, from_attributes=True)


# -- cases -------------------------------------------------------------------------------------
@api.get("/cases/{case_id}/package-preview", responses=errors(404, 410), response_model=PreviewOut)
def get_package_preview(
    case_id: uuid.UUID,
    partner_id: uuid.UUID,
    purpose: PackagePurpose,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> PreviewOut:
    return outgoing.preview(session, ctx, actor, case_id, partner_id, purpose)


@api.post(
    "/cases/{case_id}/referrals",
    responses=errors(404, 409, 410),
    response_model=ReferralQueued,
    status_code=202,
)
def post_referral(
    case_id: uuid.UUID, data: ReferralIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ReferralQueued:
    return outgoing.send_referral(session, ctx, actor, case_id, data)


@api.get(
    "/cases/{case_id}/classification",
    responses=errors(404),
    response_model=ClassificationOut,
    response_model_by_alias=True,
)
def get_classification(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ClassificationOut:
    return classification.history(session, ctx, actor, case_id)


@api.post(
    "/cases/{case_id}/classification",
    responses=errors(404, 409, 428),
    response_model=ClassificationOut,
    response_model_by_alias=True,
)
def post_classification(
    case_id: uuid.UUID,
    data: ClassificationIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ClassificationOut:
    return classification.reclassify(session, ctx, actor, case_id, data, expected_version(if_match))


# -- threads -----------------------------------------------------------------------------------
@api.get("/exchanges", responses=errors(), response_model=ExchangePage)
def get_exchanges(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    direction: Literal["outgoing", "incoming"] | None = None,
    status: Annotated[str | None, Query(max_length=30, pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ExchangePage:
    """Outbox (direction=outgoing) and inbox (direction=incoming), with what is due."""
    return reads.list_exchanges(
        session, ctx, actor, direction=direction, status=status, limit=limit, offset=offset
    )


@api.get("/exchanges/{exchange_id}", responses=errors(404), response_model=ExchangeOut)
def get_exchange(
    exchange_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ExchangeOut:
    return reads.get_exchange(session, ctx, actor, exchange_id)


@api.get(
    "/exchanges/{exchange_id}/package", responses=errors(404, 409, 410), response_model=PackageOut
)
def get_package(
    exchange_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> PackageOut:
    return steps.package_content(session, ctx, actor, exchange_id)


@api.get(
    "/exchanges/{exchange_id}/attachments/{attachment_id}",
    responses=ATTACHMENT_RESPONSES,
    response_class=Response,
)
def get_attachment(
    exchange_id: uuid.UUID,
    attachment_id: uuid.UUID,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    media_type, content = steps.attachment_content(session, ctx, actor, exchange_id, attachment_id)
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{attachment_id}"'},
    )


@api.post("/exchanges/{exchange_id}/accept", responses=errors(404, 409), response_model=ActionOut)
def post_accept(
    exchange_id: uuid.UUID, data: AcceptIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.accept(session, ctx, actor, exchange_id, data)


@api.post("/exchanges/{exchange_id}/reject", responses=errors(404, 409), response_model=ActionOut)
def post_reject(
    exchange_id: uuid.UUID, data: RejectIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.reject(session, ctx, actor, exchange_id, data)


@api.post("/exchanges/{exchange_id}/status", responses=errors(404, 409), response_model=ActionOut)
def post_status(
    exchange_id: uuid.UUID, data: StatusIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.send_status(session, ctx, actor, exchange_id, data)


@api.post(
    "/exchanges/{exchange_id}/risk-assessment", responses=errors(404, 409), response_model=ActionOut
)
def post_risk_part(
    exchange_id: uuid.UUID, data: RiskPartIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.record_risk_part(session, ctx, actor, exchange_id, data)


@api.post(
    "/exchanges/{exchange_id}/risk-assessment/finalise",
    responses=errors(404, 409, 410, 428),
    response_model=ActionOut,
)
def post_risk_finalise(
    exchange_id: uuid.UUID,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ActionOut:
    return steps.finalise_risk(session, ctx, actor, exchange_id, expected_version(if_match))


@api.post(
    "/exchanges/{exchange_id}/receiving-organisation/confirm",
    responses=errors(404, 409, 428),
    response_model=ActionOut,
)
def post_receiving_organisation(
    exchange_id: uuid.UUID,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ActionOut:
    return steps.confirm_receiving_organisation(
        session, ctx, actor, exchange_id, expected_version(if_match)
    )


@api.post(
    "/exchanges/{exchange_id}/logistics", responses=errors(404, 409), response_model=ActionOut
)
def post_logistics(
    exchange_id: uuid.UUID, data: LogisticsIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.send_logistics(session, ctx, actor, exchange_id, data)


@api.post(
    "/exchanges/{exchange_id}/arrival", responses=errors(404, 409, 410), response_model=ActionOut
)
def post_arrival(
    exchange_id: uuid.UUID, data: ArrivalIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.confirm_arrival(session, ctx, actor, exchange_id, data)


@api.post(
    "/exchanges/{exchange_id}/handover", responses=errors(404, 409, 428), response_model=ActionOut
)
def post_handover(
    exchange_id: uuid.UUID,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ActionOut:
    return steps.confirm_handover(session, ctx, actor, exchange_id, expected_version(if_match))


@api.post(
    "/exchanges/{exchange_id}/reintegration",
    responses=errors(404, 409, 428),
    response_model=ActionOut,
)
def post_reintegration(
    exchange_id: uuid.UUID,
    data: ReintegrationIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ActionOut:
    return steps.record_reintegration(
        session, ctx, actor, exchange_id, data, expected_version(if_match)
    )


@api.post(
    "/exchanges/{exchange_id}/follow-ups", responses=errors(404, 409), response_model=ActionOut
)
def post_follow_up(
    exchange_id: uuid.UUID, data: FollowUpIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> ActionOut:
    return steps.send_follow_up(session, ctx, actor, exchange_id, data)


@api.post(
    "/exchanges/{exchange_id}/re-trafficking",
    responses=errors(404, 409, 428),
    response_model=ActionOut,
)
def post_re_trafficking(
    exchange_id: uuid.UUID,
    data: ReTraffickingIn,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    if_match: IfMatch = None,
) -> ActionOut:
    return steps.report_re_trafficking(
        session, ctx, actor, exchange_id, data, expected_version(if_match)
    )


@api.get("/evidence/{evidence_id}", responses=errors(404, 410), response_model=EvidenceOut)
def get_evidence(
    evidence_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> EvidenceOut:
    return reads.evidence(session, ctx, actor, evidence_id)


@api.get("/quarantine", responses=errors(), response_model=list[QuarantineOut])
def get_quarantine(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QuarantineOut]:
    return reads.quarantine(session, ctx, actor, limit=limit)


router.include_router(exchange)
router.include_router(api)
router.include_router(screens.router)
