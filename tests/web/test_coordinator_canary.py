"""The coordinator sees cases pseudonymised: no registered value reaches any page they can
reach. Canary values are written into every free-text and identity field, then every page
linked from the coordinator's screens is fetched and searched for them."""

from __future__ import annotations

import dataclasses
from collections import deque
from urllib.parse import urldefrag, urlsplit

from tests.web.pages import facts

CANARIES = {
    "given_name": "Zorbanique",
    "family_name": "Quillfeather",
    "aliases": ["Mirabelcanary"],
    "gender_identity": "Genderycanary",
    "phone": "+44 7700 900777",
    "email": "canary.person@example.org",
    "current_location": "Canaryville-sur-Mer",
    "current_address": "99 Canary Wharf Lane",
    "accommodation": "Canary Shelter Nine",
    "disability": "Canarydisability",
    "health_notes": "canaryhealthnote",
    "documents": [{"type": "passport", "number": "CANARY12345", "issuing_country": "FR"}],
}
CASE_CANARIES = {
    "detection_place": "Canary Restaurant Backroom",
    "exploitation_form_details": "canaryexploitationdetail",
    "needs_assessment": "canaryneedsassessment",
    "statement_summary": "canarystatementsummary",
    "indicators": ["debt_bondage"],
    "exploitation_forms": ["labour"],
}
OTHER_CANARIES = (
    "canarynotebody",
    "canarydecisionreason",
    "Canary Recipient Org",
    "canaryplanbody",
)


def _all_canaries() -> list[str]:
    values: list[str] = []
    for value in [*CANARIES.values(), *CASE_CANARIES.values()]:
        if isinstance(value, str):
            values.append(value)
    values += ["Mirabelcanary", "CANARY12345", *OTHER_CANARIES]
    return [v for v in values if v not in ("debt_bondage", "labour")]


def _prepare_case(world, api) -> dict:
    ngo, police = world.agency("ngo"), world.agency("police")
    worker = api(world.user("ngo_caseworker", ngo))
    body = {
        "victim": {
            **CANARIES,
            "date_of_birth": "1991-03-04",
            "sex": "female",
            "nationalities": ["FR"],
        },
        "case": CASE_CANARIES,
        "detection": {"detected_on": "2026-10-01", "detecting_org_type": "ngo"},
        "consents": [
            {
                "purpose": "referral",
                "scope": ["identity"],
                "given_on": "2026-10-01",
                "recipient_description": "Canary Recipient Org",
            }
        ],
    }
    created = worker.post("/api/v1/cases", json=body)
    assert created.status_code == 201, created.text
    case = created.json()
    url = f"/api/v1/cases/{case['id']}"
    assert (
        worker.post(
            url + "/notes", json={"kind": "assistance", "body": "canarynotebody"}
        ).status_code
        == 201
    )
    state = worker.post(
        url + "/transitions", json={"event": "record_screening"}, headers={"If-Match": '"1"'}
    ).json()
    planned = worker.post(
        url + "/assessments",
        json={"kind": "support_plan", "body": "canaryplanbody"},
        headers={"If-Match": f'"{state["version"]}"'},
    ).json()
    worker.post(
        url + "/participants",
        json={
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "identification",
        },
    )
    state = worker.post(
        url + "/transitions",
        json={"event": "refer"},
        headers={"If-Match": f'"{planned["version"]}"'},
    ).json()
    officer = api(world.user("police_officer", police))
    state = officer.post(
        url + "/transitions",
        json={"event": "accept_referral"},
        headers={"If-Match": f'"{state["version"]}"'},
    ).json()
    decided = officer.post(
        url + "/transitions",
        json={
            "event": "positive_reasonable_grounds",
            "reason": "canarydecisionreason",
            "legal_basis": "CETS 197 Art. 10(2)",
        },
        headers={"If-Match": f'"{state["version"]}"'},
    )
    assert decided.status_code == 200, decided.text
    return case


def test_no_canary_value_on_any_page_the_coordinator_can_reach(world, web, api, app) -> None:
    case = _prepare_case(world, api)
    # The crawl is many requests from one client in a second: rate limits are not under test.
    limits = getattr(app.state, "rate_limits", None)
    if limits is not None and dataclasses.is_dataclass(limits):
        app.state.rate_limits = dataclasses.replace(limits, enabled=False)
    # The owner does see the values (the canaries are really stored and revealable).
    coordinator = web(world.user("coordinator", world.agency("coordinator_office")))
    seeds = [
        "/",
        "/coordinator",
        f"/coordinator?reference={case['reference']}",
        "/cases",
        f"/cases?reference={case['reference']}",
        f"/cases/{case['id']}",
        f"/cases/{case['id']}/timeline",
        f"/cases/{case['id']}/notes",
        f"/cases/{case['id']}/registered",
        f"/cases/{case['id']}/masked/identity",
        "/inbox",
        "/account/password",
    ]
    queue, seen, pages = deque(seeds), set(), {}
    while queue and len(seen) < 150:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        response = coordinator.get(url)
        if response.status_code in (301, 302, 303, 307):
            queue.append(response.headers["location"])
            continue
        pages[url] = response
        for href in facts(response.text).links:
            target, _ = urldefrag(href)
            parts = urlsplit(target)
            if not target or parts.scheme or parts.netloc or target.startswith("/static"):
                continue
            queue.append(target)
    assert f"/cases/{case['id']}" in pages and pages[f"/cases/{case['id']}"].status_code == 200
    assert pages[f"/cases/{case['id']}/timeline"].status_code == 200
    assert pages[f"/cases/{case['id']}/notes"].status_code == 404
    assert case["reference"] in pages[f"/coordinator?reference={case['reference']}"].text
    # Actions that would decrypt are refused outright.
    refused = coordinator.post(
        f"/cases/{case['id']}/reveal", {"group": "identity", "purpose": "case_work"}
    )
    assert refused.status_code == 404
    pages["reveal"] = refused
    canaries = _all_canaries()
    for url, response in pages.items():
        text = response.text
        for canary in canaries:
            assert canary.lower() not in text.lower(), (url, canary)
    case_page = pages[f"/cases/{case['id']}"].text
    assert 'class="masked"' not in case_page and "/reveal" not in case_page


def test_the_owner_sees_the_canaries_only_after_a_reveal(world, web, api) -> None:
    """Control for the test above: the values are really there for a role that may see them."""
    ngo = world.agency("ngo")
    worker = world.user("ngo_caseworker", ngo)
    created = (
        api(worker)
        .post(
            "/api/v1/cases",
            json={
                "victim": {**CANARIES, "date_of_birth": "1991-03-04"},
                "case": CASE_CANARIES,
                "detection": {"detected_on": "2026-10-01", "detecting_org_type": "ngo"},
            },
        )
        .json()
    )
    me = web(worker)
    page = me.get(f"/cases/{created['id']}")
    assert "Zorbanique" not in page.text
    shown = me.post(
        f"/cases/{created['id']}/reveal",
        {"group": "identity", "purpose": "case_work"},
        headers={"HX-Request": "true"},
    )
    assert "Zorbanique" in shown.text and "Quillfeather" in shown.text
