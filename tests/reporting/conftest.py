"""A small, fixed world driven through the real services with a backdated clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.auth.service import actor_for
from app.cases import service as cases
from app.cases import transitions as tx
from app.cases.models import Case
from app.cases.schemas import ConsentIn, NoteIn, ReferralIn, RegistrationIn
from app.cases.workflow import Event
from app.demo import backdated
from tests.builders import registration


def at(text: str) -> datetime:
    """'2026-04-02 10:00' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Scene:
    """Agencies, people and helpers; every call runs at a stated (backdated) time."""

    def __init__(self, world, session, ctx) -> None:
        self.session, self.ctx = session, ctx
        self.ngo_agency = world.agency("ngo", region="Île-de-France")
        self.police_agency = world.agency("police", region="Île-de-France")
        self.sca_agency = world.agency("coordinator_office", country="GB", region="London")
        self.social_agency = world.agency("social_services")
        self.focal_agency = world.agency("foreign_focal_point", country="RO", region=None)
        self.coordinator_agency = world.agency("coordinator_office", region=None)
        self.worker_user = world.user("ngo_caseworker", self.ngo_agency)
        self.worker = actor_for(self.worker_user, self.ngo_agency)
        self.officer = actor_for(
            world.user("police_officer", self.police_agency), self.police_agency
        )
        self.officer2 = actor_for(
            world.user("police_officer", self.police_agency), self.police_agency
        )
        self.sca = actor_for(world.user("police_officer", self.sca_agency), self.sca_agency)
        self.sca2 = actor_for(world.user("police_officer", self.sca_agency), self.sca_agency)
        self.guardian_user = world.user("guardian", self.social_agency)
        self.guardian = actor_for(self.guardian_user, self.social_agency)
        self.focal = actor_for(world.user("focal_point", self.focal_agency), self.focal_agency)
        self.coordinator_user = world.user("coordinator", self.coordinator_agency)
        self.coordinator = actor_for(self.coordinator_user, self.coordinator_agency)

    def register(
        self,
        when: str,
        *,
        detected: str,
        profile: str = "coe_default",
        consent: bool = True,
        **victim: Any,
    ) -> Case:
        payload = registration(**victim)
        payload["detection"]["country_profile"] = profile
        payload["detection"]["detected_on"] = detected
        if consent:
            payload["consents"] = [
                {"purpose": "referral", "scope": ["identity"], "given_on": when[:10]}
            ]
        with backdated(at(when)):
            case = cases.register(
                self.session, self.ctx, self.worker, RegistrationIn.model_validate(payload)
            )
            for agency in (self.police_agency, self.sca_agency):
                cases.refer(
                    self.session,
                    self.ctx,
                    self.worker,
                    case.id,
                    ReferralIn(
                        agency_id=agency.id,
                        access_role="identification_authority",
                        purpose="decision",
                    ),
                )
        return case

    def fire(
        self,
        actor,
        case: Case,
        event: Event,
        when: str,
        *,
        reason: str | None = None,
        closure: str | None = None,
    ) -> Case:
        with backdated(at(when)):
            return tx.transition(
                self.session,
                self.ctx,
                actor,
                case.id,
                tx.TransitionInput(event=event, reason=reason, closure_reason=closure),
                case.version,
                now=at(when),
            )

    def note(self, case: Case, kind: str, when: str, actor=None) -> None:
        with backdated(at(when)):
            cases.add_note(
                self.session,
                self.ctx,
                actor or self.worker,
                case.id,
                NoteIn(kind=kind, body="met in person"),
            )

    def consent(self, case: Case, purpose: str, when: str) -> None:
        with backdated(at(when)):
            cases.add_consent(
                self.session,
                self.ctx,
                self.worker,
                case.id,
                ConsentIn(purpose=purpose, scope=["identity"], given_on=at(when).date()),
            )

    def assess(self, case: Case, kind: str, when: str, actor=None) -> None:
        with backdated(at(when)):
            tx.record_assessment(
                self.session, self.ctx, actor or self.worker, case.id, kind, "text", case.version
            )

    def assign_guardian(self, case: Case, when: str) -> None:
        with backdated(at(when)):
            tx.assign_guardian(
                self.session, self.ctx, self.worker, case.id, self.guardian_user.id, case.version
            )

    def share(self, case: Case, agency, when: str) -> None:
        with backdated(at(when)):
            cases.refer(
                self.session,
                self.ctx,
                self.worker,
                case.id,
                ReferralIn(agency_id=agency.id, access_role="receiving", purpose="return"),
            )


@pytest.fixture
def scene(world, session, ctx) -> Scene:
    return Scene(world, session, ctx)
