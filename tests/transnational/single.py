"""One instance in-process (TestClient): its exchange identity, a partner whose key pair the
test holds (so it can play that partner), and a case shared with the focal point, with the
consents the test asks for. Built through the real API and services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.auth.service import actor_for
from app.cases import service as cases
from app.cases.schemas import ReferralIn, RegistrationIn
from app.context import AppContext
from app.db.base import utcnow
from app.transnational.keys import instance_keys
from tests.builders import registration
from tests.conftest import World
from tests.transnational import craft
from tests.transnational.conftest import contacts

INSTANCE_ID = "urn:passage:pt:screens"
PARTNER_ID = "urn:passage:sn:partner"


@dataclass
class Partnered:
    office: Agency
    admin: Any
    focal: Any
    partner_id: str
    partner_agency_id: str
    partner_sign_private: str
    partner_sign_kid: str
    partner_enc_private: str
    own_enc_public: str
    own_enc_kid: str


def configure(world: World, api: Any, ctx: AppContext) -> Partnered:
    office = world.agency("coordinator_office", name=f"Focal point {id(world)}", country="PT")
    admin = api(world.user("admin", office))
    focal = api(world.user("focal_point", office))
    put = admin.put(
        "/api/v1/transnational/instance",
        json={
            "instance_id": INSTANCE_ID,
            "country": "PT",
            "institution": "National referral mechanism PT",
            "focal_point_agency_id": str(office.id),
        },
    )
    assert put.status_code == 200, put.text
    created = admin.post(
        "/api/v1/transnational/partners",
        json={
            "country": "SN",
            "institution": "Cellule nationale de lutte contre la traite",
            "instance_id": PARTNER_ID,
            "base_url": "http://127.0.0.1:9",
            "working_languages": ["fr"],
            "contacts": contacts(),
        },
    )
    assert created.status_code == 201, created.text
    partner = created.json()
    sign_private, sign_public = craft.ec_pair()
    enc_private, enc_public = craft.rsa_pair()
    for use, pem in (("sig", sign_public), ("enc", enc_public)):
        pinned = admin.post(
            f"/api/v1/transnational/partners/{partner['id']}/keys", json={"use": use, "pem": pem}
        )
        assert pinned.status_code == 201, pinned.text
    own = instance_keys(ctx)
    return Partnered(
        office=office,
        admin=admin,
        focal=focal,
        partner_id=partner["id"],
        partner_agency_id=partner["agency_id"],
        partner_sign_private=sign_private,
        partner_sign_kid=craft.kid_of(sign_public, "sig"),
        partner_enc_private=enc_private,
        own_enc_public=own.encryption_public_pem,
        own_enc_kid=own.encryption_kid,
    )


def shared_case(
    session: Session,
    world: World,
    ctx: AppContext,
    focal_office: Agency,
    *,
    consents: list[dict[str, Any]],
    **victim: Any,
) -> tuple[str, str]:
    """A registered case shared with the focal point; (case id, reference)."""
    ngo = world.agency("ngo")
    worker = actor_for(world.user("ngo_caseworker", ngo), ngo)
    payload = registration(**victim)
    given = (utcnow().date() - timedelta(days=1)).isoformat()
    payload["consents"] = [{"given_on": given, **c} for c in consents]
    case = cases.register(session, ctx, worker, RegistrationIn.model_validate(payload))
    cases.refer(
        session,
        ctx,
        worker,
        case.id,
        ReferralIn(agency_id=focal_office.id, access_role="focal_point", purpose="referral"),
    )
    session.flush()
    return str(case.id), case.reference
