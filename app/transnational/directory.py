"""The focal-point directory: this instance's identity and its partners, with their
institutional contacts and public keys pinned out of band by an administrator.

Contacts belong to institutions (role titles, functional mailboxes), each partner has a
primary contact and a deputy, so the channel survives staff turnover. Keys are pinned from
pasted PEM, optionally checked against a fingerprint read over another channel, or fetched
from the partner's own published key list at the directory's address and pinned only when
its fingerprint matches the one the administrator typed. A URL found in a message is never
followed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.audit import service as audit
from app.auth.actor import Actor
from app.cases.service import require
from app.context import AppContext
from app.db.base import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.transnational import transport
from app.transnational.keys import normalise_fingerprint, parse_public_key
from app.transnational.models import LocalInstance, Partner, PartnerContact, PartnerKey
from app.transnational.schemas import (
    ContactIn,
    KeyFetchIn,
    KeyPinIn,
    KeyStatusIn,
    LocalInstanceIn,
    PartnerIn,
    PartnerPatch,
)

DIRECTORY_CHAIN = "transnational:directory"


class PinRefused(Conflict):
    """A refused pin is a security decision: its audit event is kept."""

    keep_audit = True


def _can_read(ctx: AppContext, actor: Actor) -> None:
    if not (
        ctx.policy.can(actor.role, "agencies.manage")
        or ctx.policy.can(actor.role, "handover.manage")
    ):
        raise Forbidden("your role may not see the focal-point directory")


def _audit(session: Session, actor: Actor, action: str, **details: object) -> None:
    audit.record(session, actor, action, chain_key=DIRECTORY_CHAIN, details=details)


# -- this instance ---------------------------------------------------------------------------
def get_local(session: Session) -> LocalInstance | None:
    return session.get(LocalInstance, 1)


def require_local(session: Session) -> LocalInstance:
    local = get_local(session)
    if local is None:
        raise Conflict(
            "this instance's exchange identity is not configured (an administrator sets it)",
            code="exchange_not_configured",
        )
    return local


def set_local(
    session: Session, ctx: AppContext, actor: Actor, data: LocalInstanceIn
) -> LocalInstance:
    require(ctx, actor, "agencies.manage")
    agency = session.get(Agency, data.focal_point_agency_id)
    if agency is None or not agency.is_active or agency.type != "coordinator_office":
        raise InvalidInput("the national focal point must be an active coordinator_office agency")
    local = get_local(session)
    if local is None:
        local = LocalInstance(id=1)
        session.add(local)
    local.instance_id = data.instance_id
    local.country = data.country
    local.institution = data.institution
    local.focal_point_agency_id = agency.id
    local.updated_by = actor.user_id
    local.updated_at = utcnow()
    session.flush()
    _audit(session, actor, "transnational_instance_configured", agency_id=str(agency.id))
    return local


# -- partners --------------------------------------------------------------------------------
def _check_contacts(contacts: Sequence[ContactIn]) -> None:
    ranks = {c.rank for c in contacts}
    if ranks != {"primary", "deputy"}:
        raise InvalidInput("a partner needs at least one primary contact and one deputy")


def _replace_contacts(session: Session, partner: Partner, contacts: Sequence[ContactIn]) -> None:
    for old in session.scalars(
        select(PartnerContact).where(PartnerContact.partner_id == partner.id)
    ):
        session.delete(old)
    for c in contacts:
        session.add(
            PartnerContact(
                partner_id=partner.id,
                role_title=c.role_title,
                email=c.email,
                phone=c.phone,
                rank=c.rank,
                out_of_hours=c.out_of_hours,
                languages=list(c.languages),
            )
        )


def list_partners(session: Session, ctx: AppContext, actor: Actor) -> list[Partner]:
    _can_read(ctx, actor)
    return list(session.scalars(select(Partner).order_by(Partner.country, Partner.institution)))


def get_partner(session: Session, ctx: AppContext, actor: Actor, partner_id: uuid.UUID) -> Partner:
    _can_read(ctx, actor)
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound()
    return partner


def contacts_of(session: Session, partner: Partner) -> list[PartnerContact]:
    stmt = select(PartnerContact).where(PartnerContact.partner_id == partner.id)
    return list(
        session.scalars(stmt.order_by(PartnerContact.rank.desc(), PartnerContact.role_title))
    )


def keys_of(session: Session, partner: Partner) -> list[PartnerKey]:
    stmt = select(PartnerKey).where(PartnerKey.partner_id == partner.id)
    return list(session.scalars(stmt.order_by(PartnerKey.pinned_at)))


def create_partner(session: Session, ctx: AppContext, actor: Actor, data: PartnerIn) -> Partner:
    require(ctx, actor, "agencies.manage")
    _check_contacts(data.contacts)
    base_url = transport.check_base_url(
        data.base_url, production=ctx.settings.environment == "production"
    )
    if session.scalars(select(Partner).where(Partner.instance_id == data.instance_id)).first():
        raise Conflict("a partner with this instance id is already in the directory")
    local = get_local(session)
    if local is not None and local.instance_id == data.instance_id:
        raise InvalidInput("that instance id is this instance's own")
    name = f"{data.institution} ({data.country})"[:200]
    if session.scalars(select(Agency).where(Agency.name == name)).first():
        raise Conflict("an agency with this institution name already exists")
    agency = Agency(name=name, type="foreign_focal_point", country=data.country, region=None)
    session.add(agency)
    session.flush()
    partner = Partner(
        agency_id=agency.id,
        country=data.country,
        institution=data.institution,
        instance_id=data.instance_id,
        base_url=base_url,
        working_languages=list(data.working_languages),
        last_verified_on=data.last_verified_on,
        status="active",
    )
    session.add(partner)
    session.flush()
    _replace_contacts(session, partner, data.contacts)
    session.flush()
    _audit(
        session,
        actor,
        "transnational_partner_added",
        partner_id=str(partner.id),
        agency_id=str(agency.id),
        country=data.country,
    )
    return partner


def update_partner(
    session: Session, ctx: AppContext, actor: Actor, partner_id: uuid.UUID, data: PartnerPatch
) -> Partner:
    require(ctx, actor, "agencies.manage")
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound()
    changed = sorted(data.model_fields_set)
    if data.base_url is not None:
        partner.base_url = transport.check_base_url(
            data.base_url, production=ctx.settings.environment == "production"
        )
    if data.working_languages is not None:
        partner.working_languages = list(data.working_languages)
    if "last_verified_on" in data.model_fields_set:
        partner.last_verified_on = data.last_verified_on
    if data.contacts is not None:
        _check_contacts(data.contacts)
        _replace_contacts(session, partner, data.contacts)
    if data.status is not None:
        partner.status = data.status
    partner.updated_at = utcnow()
    session.flush()
    _audit(
        session, actor, "transnational_partner_updated", partner_id=str(partner.id), changed=changed
    )
    return partner


# -- keys ------------------------------------------------------------------------------------
def _pin(
    session: Session,
    actor: Actor,
    partner: Partner,
    use: str,
    pem: str,
    *,
    via: str,
    expected_fingerprint: str | None,
) -> PartnerKey:
    info = parse_public_key(pem, use)
    if expected_fingerprint is not None and normalise_fingerprint(expected_fingerprint) != info.kid:
        _audit(
            session,
            actor,
            "transnational_key_pin_refused",
            partner_id=str(partner.id),
            use=use,
            reason="fingerprint_mismatch",
        )
        raise PinRefused(
            "the key's fingerprint does not match the one you entered; it was not pinned",
            code="fingerprint_mismatch",
        )
    existing = session.scalars(
        select(PartnerKey).where(PartnerKey.partner_id == partner.id, PartnerKey.kid == info.kid)
    ).first()
    if existing is not None:
        raise Conflict("this key is already pinned for this partner")
    key = PartnerKey(
        partner_id=partner.id,
        use=use,
        kid=info.kid,
        public_pem=info.pem,
        status="active",
        pinned_via=via,
        pinned_by=actor.user_id,
    )
    session.add(key)
    session.flush()
    _audit(
        session,
        actor,
        "transnational_key_pinned",
        partner_id=str(partner.id),
        use=use,
        kid=info.kid,
        via=via,
    )
    return key


def pin_key(
    session: Session, ctx: AppContext, actor: Actor, partner_id: uuid.UUID, data: KeyPinIn
) -> PartnerKey:
    require(ctx, actor, "agencies.manage")
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound()
    return _pin(
        session,
        actor,
        partner,
        data.use,
        data.pem,
        via="pem",
        expected_fingerprint=data.expected_fingerprint,
    )


def fetch_and_pin(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    partner_id: uuid.UUID,
    data: KeyFetchIn,
    client: httpx.Client | None = None,
) -> PartnerKey:
    """Fetch the partner's published keys from the directory address; pin only the one whose
    fingerprint the administrator obtained out of band."""
    require(ctx, actor, "agencies.manage")
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound()
    wanted = normalise_fingerprint(data.fingerprint)
    own = client is None
    http = client or transport.make_client()
    try:
        published = transport.fetch_published_keys(http, partner.base_url)
    except (httpx.HTTPError, ValueError) as exc:
        raise Conflict(
            "the partner's published keys could not be fetched", code="partner_unreachable"
        ) from exc
    finally:
        if own:
            http.close()
    for entry in published:
        pem = entry.get("pem")
        if entry.get("use") != data.use or not isinstance(pem, str):
            continue
        try:
            info = parse_public_key(pem, data.use)
        except InvalidInput:
            continue
        if info.kid == wanted:
            return _pin(
                session,
                actor,
                partner,
                data.use,
                pem,
                via="fingerprint",
                expected_fingerprint=wanted,
            )
    _audit(
        session,
        actor,
        "transnational_key_pin_refused",
        partner_id=str(partner.id),
        use=data.use,
        reason="fingerprint_not_published",
    )
    raise PinRefused(
        "the partner publishes no key with that fingerprint; nothing was pinned",
        code="fingerprint_mismatch",
    )


def set_key_status(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    partner_id: uuid.UUID,
    kid: str,
    data: KeyStatusIn,
) -> PartnerKey:
    """Retire (no longer used for new messages; old evidence still verifies) or revoke
    (compromised or withdrawn: refused from now on, and flagged on evidence)."""
    require(ctx, actor, "agencies.manage")
    key = session.scalars(
        select(PartnerKey).where(PartnerKey.partner_id == partner_id, PartnerKey.kid == kid)
    ).first()
    if key is None:
        raise NotFound()
    if key.status == "revoked":
        raise Conflict("this key is already revoked")
    now = utcnow()
    if data.status == "revoked":
        if data.reason_code is None:
            raise InvalidInput("say why the key is revoked (reason_code)")
        key.status, key.revoked_at, key.revocation_reason = "revoked", now, str(data.reason_code)
    else:
        if key.status == "retired":
            raise Conflict("this key is already retired")
        key.status, key.retired_at = "retired", now
    session.flush()
    _audit(
        session,
        actor,
        f"transnational_key_{data.status}",
        partner_id=str(partner_id),
        kid=kid,
        reason=str(data.reason_code) if data.reason_code else None,
    )
    return key


# -- lookups for the exchange ----------------------------------------------------------------
def partner_by_instance(session: Session, instance_id: str) -> Partner | None:
    return session.scalars(select(Partner).where(Partner.instance_id == instance_id)).first()


def partner_key(session: Session, partner: Partner, use: str, kid: str) -> PartnerKey | None:
    return session.scalars(
        select(PartnerKey).where(
            PartnerKey.partner_id == partner.id, PartnerKey.use == use, PartnerKey.kid == kid
        )
    ).first()


def encryption_key(session: Session, partner: Partner) -> PartnerKey | None:
    """The newest active encryption key of the partner (rotation: pin new, retire old)."""
    return session.scalars(
        select(PartnerKey)
        .where(
            PartnerKey.partner_id == partner.id,
            PartnerKey.use == "enc",
            PartnerKey.status == "active",
        )
        .order_by(PartnerKey.pinned_at.desc())
    ).first()
