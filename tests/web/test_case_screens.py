"""The case screens through their forms: registration, masked fields, reveal, actions."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.cases.models import Case, CaseNote, Consent
from tests.builders import registration
from tests.web.pages import assert_accessible_page, draft_of, version_of

HX = {"HX-Request": "true"}


def wizard(me, steps: list[dict]) -> object:
    """Walk the registration form, one POST per step, carrying the sealed draft."""
    page = me.get("/cases/new")
    assert page.status_code == 200
    assert_accessible_page(page.text)
    response = page
    for step in steps:
        response = me.post("/cases/new", {"draft": draft_of(response.text), **step})
        assert response.status_code in (200, 303), response.text[:2000]
        if response.status_code == 200:
            assert_accessible_page(response.text)
    return response


IDENTITY = {
    "step": "identity",
    "action": "next",
    "given_name": "Amara",
    "family_name": "Okafor",
    "date_of_birth": "1990-02-03",
    "sex": "female",
    "nationalities": ["NG", "GH"],
    "languages": "en, yo",
    "document_type": "passport",
    "document_number": "A1234567",
    "document_country": "NG",
}
CIRCUMSTANCES = {
    "step": "circumstances",
    "action": "next",
    "phone": "+33 6 11 22 33 44",
    "email": "amara@example.org",
    "accommodation": "Foyer Horizon",
}
EXPLOITATION = {
    "step": "exploitation",
    "action": "next",
    "detected_on": "2026-01-05",
    "detecting_org_type": "ngo",
    "indicators": ["debt_bondage", "isolation"],
    "exploitation_forms": ["labour"],
    "labour_sector": "hospitality",
}


def consent_step(agency_id: str = "") -> dict:
    return {
        "step": "consent",
        "action": "next",
        "consent_referral": "on",
        "consent_referral_scope": ["identity", "contact"],
        "consent_referral_given_on": "2026-01-05",
        "consent_referral_recipient_agency_id": agency_id,
    }


def register(me, **identity) -> str:
    done = wizard(
        me,
        [
            {**IDENTITY, **identity},
            CIRCUMSTANCES,
            EXPLOITATION,
            consent_step(),
            {"step": "review", "action": "submit"},
        ],
    )
    assert done.status_code == 303
    return str(done.headers["location"]).removesuffix("/registered")


def test_registration_in_five_steps_stores_what_was_typed(world, web, session) -> None:
    me = web(world.user("ngo_caseworker", world.agency("ngo")))
    review = wizard(me, [IDENTITY, CIRCUMSTANCES, EXPLOITATION, consent_step()])
    assert "Review and register" in review.text
    for shown in ("Amara", "Okafor", "Nigeria", "Ghana", "Debt bondage", "Referral to support"):
        assert shown in review.text
    done = me.post(
        "/cases/new", {"draft": draft_of(review.text), "step": "review", "action": "submit"}
    )
    assert done.status_code == 303
    registered = me.get(done.headers["location"])
    assert registered.status_code == 200
    assert "No possible duplicate" in registered.text
    case_id = uuid.UUID(done.headers["location"].split("/")[2])
    case = session.get(Case, case_id)
    assert case is not None and case.stage == "detected" and case.indicator_count == 2
    assert case.age_band == "adult" and case.nationality == "NG"
    consents = session.scalars(select(Consent).where(Consent.case_id == case_id)).all()
    assert [(c.purpose, c.scope) for c in consents] == [("referral", ["identity", "contact"])]
    # The values are sealed at rest, and the case page shows them masked.
    page = me.get(f"/cases/{case_id}")
    assert "Amara" not in page.text and "Foyer Horizon" not in page.text
    revealed = me.post(
        f"/cases/{case_id}/reveal", {"group": "identity", "purpose": "case_work"}, headers=HX
    )
    assert "Amara" in revealed.text and "Okafor" in revealed.text and "Nigeria" in revealed.text


def test_validation_errors_keep_what_was_typed_and_never_echo_it_elsewhere(world, web) -> None:
    me = web(world.user("ngo_caseworker", world.agency("ngo")))
    first = wizard(me, [IDENTITY])
    bad = me.post(
        "/cases/new",
        {
            "draft": draft_of(first.text),
            **CIRCUMSTANCES,
            "email": "not-an-email",
            "phone": "call me maybe",
        },
    )
    assert bad.status_code == 422
    assert 'value="not-an-email"' in bad.text and 'value="call me maybe"' in bad.text
    assert 'value="Foyer Horizon"' in bad.text
    assert bad.text.count("not-an-email") == 1  # only in the field itself
    assert "This value is not in the expected format." in bad.text
    assert 'aria-invalid="true"' in bad.text
    # Going back shows the first step as it was typed.
    back = me.post(
        "/cases/new", {"draft": draft_of(bad.text), "step": "circumstances", "action": "back"}
    )
    assert 'value="Amara"' in back.text and 'value="A1234567"' in back.text
    assert 'value="NG" selected' in back.text
    future = me.post(
        "/cases/new",
        {"draft": draft_of(back.text), **IDENTITY, "date_of_birth": "2999-01-01"},
    )
    assert future.status_code == 422 and "The date cannot be in the future." in future.text
    no_date = wizard(me, [IDENTITY, CIRCUMSTANCES])
    missing = me.post(
        "/cases/new", {"draft": draft_of(no_date.text), **EXPLOITATION, "detected_on": ""}
    )
    assert missing.status_code == 422 and "This field is required." in missing.text
    assert 'value="debt_bondage" checked' in missing.text


def test_the_draft_is_sealed_and_bound_to_the_session(world, web) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    me = web(worker)
    page = wizard(me, [IDENTITY, CIRCUMSTANCES])
    draft = draft_of(page.text)
    raw = base64.urlsafe_b64decode(draft)
    assert b"Amara" not in raw and b"Okafor" not in raw and b"Horizon" not in raw
    tampered = draft[:-6] + ("AAAAAA" if not draft.endswith("AAAAAA") else "BBBBBB")
    refused = me.post("/cases/new", {"draft": tampered, **EXPLOITATION})
    assert refused.status_code == 400 and "could not be read" in refused.text
    assert "Amara" not in refused.text
    other_session = web(worker)
    stolen = other_session.post("/cases/new", {"draft": draft, **EXPLOITATION})
    assert stolen.status_code == 400 and "Amara" not in stolen.text


def test_a_second_registration_of_the_same_person_warns_and_names_only_the_agency(
    world, web
) -> None:
    first_ngo = world.agency("ngo", name="Association Horizon")
    register(web(world.user("ngo_caseworker", first_ngo)))
    other = web(world.user("ngo_caseworker", world.agency("ngo")))
    case_url = register(other, given_name="AMARA", family_name="okafor")
    warning = other.get(case_url + "/registered")
    assert "Possible duplicate" in warning.text
    assert "Association Horizon" in warning.text
    assert "family name and date of birth" in warning.text
    assert "PSG-" in warning.text  # this case's own reference, nothing of the other case


def test_reveal_needs_a_purpose_is_audited_and_returns_only_the_group(
    world, web, api, session
) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    me = web(worker)
    url = f"/cases/{created['id']}"
    page = me.get(url)
    assert "Élodie" not in page.text and "rue des Lilas" not in page.text
    assert 'class="masked"' in page.text
    no_purpose = me.post(url + "/reveal", {"group": "identity", "purpose": ""}, headers=HX)
    assert no_purpose.status_code == 422
    assert no_purpose.headers["HX-Retarget"] == "#messages"
    assert "Élodie" not in no_purpose.text
    fragment = me.post(
        url + "/reveal", {"group": "location", "purpose": "safety_planning"}, headers=HX
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "12 rue des Lilas" in fragment.text and "Élodie" not in fragment.text
    event = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "fields_revealed", AuditEvent.case_id == uuid.UUID(created["id"])
        )
    ).one()
    assert event.details["purpose"] == "safety_planning"
    assert "current_address" in event.fields
    assert "Lilas" not in str(event.details) + str(event.fields)
    # Without JavaScript: the whole page comes back with the group shown.
    full = me.post(url + "/reveal", {"group": "contact", "purpose": "case_work"})
    assert "<html" in full.text and "+33 6 12 34 56 78" in full.text
    hidden = me.get(url + "/masked/contact", headers=HX)
    assert "+33 6 12 34 56 78" not in hidden.text and 'class="masked"' in hidden.text
    # A group the role may not see does not exist for it.
    police = world.agency("police")
    officer = web(world.user("police_officer", police))
    api(worker).post(
        f"/api/v1/cases/{created['id']}/participants",
        json={
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "identification",
        },
    )
    assert (
        officer.post(url + "/reveal", {"group": "health", "purpose": "case_work"}).status_code
        == 404
    )


def test_workflow_actions_refusals_keep_the_form_and_decisions_need_reasons(
    world, web, api, session
) -> None:
    ngo, police = world.agency("ngo"), world.agency("police")
    worker = world.user("ngo_caseworker", ngo)
    body = registration()
    body["case"]["indicators"] = []
    created = api(worker).post("/api/v1/cases", json=body).json()
    me = web(worker)
    url = f"/cases/{created['id']}"
    page = me.get(url)
    refused = me.post(
        url + "/transition", {"event": "record_screening", "version": version_of(page.text)}
    )
    assert refused.status_code == 409
    assert "Screening requires at least one trafficking indicator" in refused.text
    assert session.get(Case, uuid.UUID(created["id"])).stage == "detected"
    kept = session.scalars(
        select(AuditEvent.action).where(AuditEvent.case_id == uuid.UUID(created["id"]))
    ).all()
    assert "transition_refused" in kept  # a refused decision is recorded
    stale = me.post(
        url + "/transition", {"event": "close", "closure_reason": "other", "version": "99"}
    )
    assert stale.status_code == 409 and "changed since you loaded it" in stale.text

    # A referred adult case at the police: accept, then a decision without reasons.
    ok = api(worker)
    case = ok.post(
        "/api/v1/cases",
        json={
            **registration(),
            "consents": [{"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}],
        },
    ).json()
    curl = f"/cases/{case['id']}"
    me.post(
        curl + "/transition",
        {"event": "record_screening", "version": version_of(me.get(curl).text)},
    )
    shared = me.post(
        curl + "/referrals",
        {
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "identification",
            "fire_refer": "on",
            "version": version_of(me.get(curl).text),
        },
    )
    assert shared.status_code == 303
    assert session.get(Case, uuid.UUID(case["id"])).stage == "referred"
    officer = web(world.user("police_officer", police))
    officer.post(
        curl + "/transition",
        {"event": "accept_referral", "version": version_of(officer.get(curl).text)},
    )
    page = officer.get(curl)
    assert "Positive reasonable-grounds decision" in page.text
    no_reason = officer.post(
        curl + "/transition",
        {
            "event": "positive_reasonable_grounds",
            "reason": "",
            "legal_basis": "My typed basis",
            "version": version_of(page.text),
        },
    )
    assert no_reason.status_code == 422
    assert "Give the reasons for this step." in no_reason.text
    assert 'value="My typed basis"' in no_reason.text
    decided = officer.post(
        curl + "/transition",
        {
            "event": "positive_reasonable_grounds",
            "reason": "Consistent account",
            "legal_basis": "CETS 197 Art. 10(2)",
            "version": version_of(page.text),
        },
    )
    assert decided.status_code == 303
    stored = session.get(Case, uuid.UUID(case["id"]))
    assert stored.stage == "recovery_reflection" and stored.reasonable_grounds_at is not None
    reason = session.scalars(
        select(CaseNote).where(CaseNote.case_id == stored.id, CaseNote.kind == "decision_reason")
    ).one()
    assert reason.body is not None and b"Consistent" not in reason.body
    assert "Consistent account" not in officer.get(curl).text


def test_negative_decision_needs_a_second_officer(world, web, api, session) -> None:
    ngo, police = world.agency("ngo"), world.agency("police")
    worker = world.user("ngo_caseworker", ngo)
    client = api(worker)
    case = client.post(
        "/api/v1/cases",
        json={
            **registration(),
            "consents": [{"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}],
        },
    ).json()
    curl = f"/cases/{case['id']}"
    me = web(worker)
    me.post(
        curl + "/transition",
        {"event": "record_screening", "version": version_of(me.get(curl).text)},
    )
    me.post(
        curl + "/referrals",
        {
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "identification",
            "fire_refer": "on",
            "version": version_of(me.get(curl).text),
        },
    )
    first = web(world.user("police_officer", police))
    second = web(world.user("police_officer", police))
    first.post(
        curl + "/transition",
        {"event": "accept_referral", "version": version_of(first.get(curl).text)},
    )
    proposed = first.post(
        curl + "/transition",
        {
            "event": "propose_negative_decision",
            "reason": "No indicators confirmed",
            "legal_basis": "CETS 197 Art. 10(2)",
            "version": version_of(first.get(curl).text),
        },
    )
    assert proposed.status_code == 303
    mine = first.get(curl).text
    assert "You proposed a negative decision" in mine
    assert "Confirm the negative reasonable-grounds decision" not in mine
    assert "Awaiting another officer" in first.get("/inbox").text
    inbox = second.get("/inbox")
    assert case["reference"] in inbox.text and "Second review needed" in inbox.text
    partial = second.get("/inbox?stage=reasonable_grounds_pending", headers=HX)
    assert case["reference"] in partial.text and "<html" not in partial.text
    assert case["reference"] not in second.get("/inbox?stage=identification_pending").text
    theirs = second.get(curl).text
    assert "A negative decision was proposed by another officer" in theirs
    # The proposer cannot confirm, even by posting the form directly.
    self_confirm = first.post(
        curl + "/transition",
        {
            "event": "negative_reasonable_grounds",
            "reason": "x",
            "legal_basis": "y",
            "version": version_of(mine),
        },
    )
    assert self_confirm.status_code == 409 and "second reviewer" in self_confirm.text
    confirmed = second.post(
        curl + "/transition",
        {
            "event": "negative_reasonable_grounds",
            "reason": "Agree",
            "legal_basis": "CETS 197",
            "version": version_of(theirs),
        },
    )
    assert confirmed.status_code == 303
    assert session.get(Case, uuid.UUID(case["id"])).stage == "not_identified"


def test_notes_assessments_accommodation_consents_and_tracks(world, web, api, session) -> None:
    ngo, social = world.agency("ngo"), world.agency("social_services")
    worker = world.user("ngo_caseworker", ngo)
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    case_id = uuid.UUID(created["id"])
    url = f"/cases/{created['id']}"
    api(worker).post(
        url.replace("/cases", "/api/v1/cases") + "/participants",
        json={"agency_id": str(social.id), "access_role": "social_worker", "purpose": "assistance"},
    )
    sw = web(world.user("social_worker", social))
    page = sw.get(url)
    assert "Support and safety plan" in page.text and "New accommodation" in page.text
    empty = sw.post(url + "/notes", {"kind": "assistance", "body": ""})
    assert empty.status_code == 422 and "This field is required." in empty.text
    assert (
        sw.post(
            url + "/notes", {"kind": "assistance", "body": "Food parcel and bus pass"}
        ).status_code
        == 303
    )
    notes = sw.get(url + "/notes", headers=HX)
    assert "Food parcel and bus pass" in notes.text and "<html" not in notes.text
    plan = sw.post(
        url + "/assessments",
        {"kind": "support_plan", "body": "Weekly visits", "version": version_of(sw.get(url).text)},
    )
    assert plan.status_code == 303
    assert session.get(Case, case_id).support_plan_at is not None
    moved = sw.post(
        url + "/accommodation",
        {"accommodation": "Maison Claire, room 4", "version": version_of(sw.get(url).text)},
    )
    assert moved.status_code == 303
    shown = sw.post(
        url + "/reveal", {"group": "accommodation", "purpose": "safety_planning"}, headers=HX
    )
    assert "Maison Claire, room 4" in shown.text
    # Consents: record one, then withdraw it.
    me = web(worker)
    recorded = me.post(
        url + "/consents",
        {"purpose": "research_statistics", "scope": ["identity"], "given_on": "2026-10-02"},
    )
    assert recorded.status_code == 303
    consent = session.scalars(
        select(Consent).where(Consent.case_id == case_id, Consent.purpose == "research_statistics")
    ).one()
    bad = me.post(
        url + "/consents",
        {
            "purpose": "referral",
            "given_on": "2026-10-02",
            "recipient_description": "Typed recipient",
        },
    )
    assert bad.status_code == 422 and "Choose at least one item." in bad.text
    assert 'value="Typed recipient"' in bad.text
    withdrawn = me.post(url + f"/consents/{consent.id}/withdraw")
    assert withdrawn.status_code == 303
    session.refresh(consent)
    assert consent.withdrawn_at is not None
    assert "Withdrawn" in me.get(url).text
    # Residence permit track for the caseworker.
    applied = me.post(
        url + "/tracks/residence_permit",
        {"event": "apply", "version": version_of(me.get(url).text)},
    )
    assert applied.status_code == 303
    assert session.get(Case, case_id).residence_permit_status == "applied"


def test_guardian_sees_assigned_child_cases_records_best_interests_and_cosigns(
    world, web, api, session
) -> None:
    ngo, social = world.agency("ngo"), world.agency("social_services")
    worker = world.user("ngo_caseworker", ngo)
    guardian = world.user("guardian", social)
    child = api(worker).post("/api/v1/cases", json=registration(date_of_birth="2012-05-01")).json()
    adult = api(worker).post("/api/v1/cases", json=registration()).json()
    me = web(worker)
    curl = f"/cases/{child['id']}"
    page = me.get(curl)
    assert "Assign the guardian" in page.text
    assert "Assign the guardian" not in me.get(f"/cases/{adult['id']}").text
    assigned = me.post(
        curl + "/guardian", {"guardian_user_id": str(guardian.id), "version": version_of(page.text)}
    )
    assert assigned.status_code == 303
    g = web(guardian)
    listing = g.get("/cases")
    assert child["reference"] in listing.text and adult["reference"] not in listing.text
    assert g.get(f"/cases/{adult['id']}").status_code == 404
    gpage = g.get(curl)
    assert "Best-interests assessment" in gpage.text
    done = g.post(
        curl + "/assessments",
        {
            "kind": "best_interests",
            "body": "Return not advised yet",
            "version": version_of(gpage.text),
        },
    )
    assert done.status_code == 303
    assert session.get(Case, uuid.UUID(child["id"])).best_interests_assessed_at is not None
    # In return planning, the guardian co-signs the return.
    session.execute(
        update(Case).where(Case.id == uuid.UUID(child["id"])).values(stage="return_planning")
    )
    session.flush()
    gpage = g.get(curl)
    assert "Co-sign the return" in gpage.text
    signed = g.post(
        curl + "/transition", {"event": "cosign_return", "version": version_of(gpage.text)}
    )
    assert signed.status_code == 303
    session.expire_all()
    assert session.get(Case, uuid.UUID(child["id"])).guardian_cosigned_at is not None


def test_police_records_proceedings_without_touching_assistance(world, web, api, session) -> None:
    ngo, police = world.agency("ngo"), world.agency("police")
    worker = world.user("ngo_caseworker", ngo)
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    api(worker).post(
        f"/api/v1/cases/{created['id']}/participants",
        json={
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "legal_proceedings",
        },
    )
    officer = web(world.user("police_officer", police))
    url = f"/cases/{created['id']}"
    page = officer.get(url)
    assert "Open an investigation" in page.text
    assert (
        officer.post(
            url + "/tracks/proceedings",
            {"event": "open_investigation", "version": version_of(page.text)},
        ).status_code
        == 303
    )
    assert session.get(Case, uuid.UUID(created["id"])).proceedings_status == "investigation"
    unknown = officer.post(
        url + "/tracks/proceedings",
        {"event": "convict", "version": version_of(officer.get(url).text)},
    )
    assert unknown.status_code == 422


def test_caseload_filters_searches_pages_and_puts_overdue_first(world, web, api, session) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    client = api(worker)
    made = [client.post("/api/v1/cases", json=registration()).json() for _ in range(27)]
    overdue, later = made[5], made[6]
    now = datetime.now(UTC)
    session.execute(
        update(Case)
        .where(Case.id == uuid.UUID(later["id"]))
        .values(next_due_at=now + timedelta(days=20))
    )
    session.execute(
        update(Case)
        .where(Case.id == uuid.UUID(overdue["id"]))
        .values(next_due_at=now - timedelta(days=2), stage="presumed_victim")
    )
    session.flush()
    me = web(worker)
    first = me.get("/cases")
    assert "Cases (27)" in first.text and "Page 1 of 2" in first.text
    rows = re.findall(r'href="/cases/[0-9a-f-]{36}">(PSG-[0-9A-Z]{4}-[0-9A-Z]{4})', first.text)
    assert rows[0] == overdue["reference"] and rows[1] == later["reference"]
    assert "Overdue" in first.text
    second = me.get("/cases?page=2", headers=HX)
    assert "<html" not in second.text and 'id="results"' in second.text
    assert len(re.findall(r'href="/cases/[0-9a-f-]{36}"', second.text)) == 2
    staged = me.get("/cases?stage=presumed_victim")
    assert "Cases (1)" in staged.text and overdue["reference"] in staged.text
    found = me.get(f"/cases?reference={later['reference'].lower()}")
    assert "Cases (1)" in found.text and later["reference"] in found.text
    bad = me.get("/cases?reference=<script>")
    assert (
        "Enter a case reference such as PSG-ABCD-1234." in bad.text and "<script>" not in bad.text
    )
    none = me.get("/cases?reference=PSG-0000-0000")
    assert "No case matches these filters." in none.text
    empty = web(world.user("ngo_caseworker", world.agency("ngo"))).get("/cases")
    assert "There are no cases for you yet." in empty.text


def test_every_page_of_a_case_follows_the_page_rules(world, web, api) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    api(worker).post(f"/api/v1/cases/{created['id']}/notes", json={"kind": "note", "body": "hello"})
    me = web(worker)
    for suffix in ("", "/timeline", "/notes", "/registered"):
        page = me.get(f"/cases/{created['id']}{suffix}")
        assert page.status_code == 200, suffix
        assert_accessible_page(page.text)
    review = wizard(me, [IDENTITY, CIRCUMSTANCES, EXPLOITATION, consent_step()])
    back_to_identity = me.post(
        "/cases/new", {"draft": draft_of(review.text), "step": "review", "action": "goto:identity"}
    )
    assert 'value="Amara"' in back_to_identity.text and "Step 1 of 5" in back_to_identity.text
