"""Building a case ready for return on the sending instance, through the real services."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.auth.models import User
from app.auth.service import actor_for
from app.cases import service as cases
from app.cases import transitions as tx
from app.cases.schemas import ReferralIn, RegistrationIn
from app.cases.workflow import Event
from app.db.base import utcnow
from tests.builders import registration
from tests.transnational.conftest import Side

TODAY = utcnow().date()


@dataclass
class CaseSetup:
    case_id: str
    reference: str
    ngo_id: uuid.UUID
    consent_ids: dict[str, str]
    worker: User


def returning_case(
    side: Side,
    *,
    scope: list[str],
    recipient_agency_id: str,
    stage: str = "return_planning",
    case_fields: dict[str, Any] | None = None,
    **victim: Any,
) -> CaseSetup:
    """An adult identified in the sending country, who decided to return, with consent to
    share `scope` with the partner for return preparation (and transnational sharing)."""
    inst = side.instance
    ngo = inst.agency("ngo")
    police = inst.agency("police")
    worker_user = inst.user("ngo_caseworker", ngo)
    officer_user = inst.user("police_officer", police)
    payload = registration(**victim)
    payload["case"].update(case_fields or {})
    given = (TODAY - timedelta(days=2)).isoformat()
    payload["consents"] = [
        {"purpose": "referral", "scope": ["identity", "exploitation"], "given_on": given},
        {
            "purpose": "return_preparation",
            "recipient_agency_id": recipient_agency_id,
            "scope": scope,
            "given_on": given,
        },
        {
            "purpose": "data_sharing_transnational",
            "recipient_agency_id": recipient_agency_id,
            "scope": scope,
            "given_on": given,
        },
    ]
    with inst.session() as s, s.begin():
        worker = actor_for(worker_user, ngo)
        officer = actor_for(officer_user, police)
        case = cases.register(s, inst.ctx, worker, RegistrationIn.model_validate(payload))
        for agency, role in (
            (police, "identification_authority"),
            (side.focal_agency, "focal_point"),
        ):
            cases.refer(
                s,
                inst.ctx,
                worker,
                case.id,
                ReferralIn(agency_id=agency.id, access_role=role, purpose="referral"),
            )
        start = utcnow() - timedelta(days=1)

        def fire(actor: Any, event: Event, **kw: Any) -> None:
            tx.transition(
                s,
                inst.ctx,
                actor,
                case.id,
                tx.TransitionInput(event=event, **kw),
                case.version,
                now=start,
            )

        if stage in ("return_planning", "recovery_reflection"):
            fire(worker, Event.record_screening)
            fire(worker, Event.refer)
            fire(officer, Event.accept_referral)
            fire(
                officer,
                Event.positive_reasonable_grounds,
                reason="credible account",
                legal_basis="CETS 197 Art. 10(2)",
            )
        if stage == "return_planning":
            fire(worker, Event.plan_return)
        consent_ids = {c.purpose: str(c.id) for c in cases.repo.consents(s, case.id)}
        return CaseSetup(str(case.id), case.reference, ngo.id, consent_ids, worker_user)


def case_version(side: Side, case_id: str, client: Any = None) -> int:
    user = client or side.focal_point
    response = user.get(f"/api/v1/cases/{case_id}/transitions")
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def claims_of(jws: str) -> dict[str, Any]:
    """Read a JWS's claims in the test (its signature is checked by the server under test)."""
    segment = jws.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))
