"""End-to-end flows in real Chromium: registration and referral, a decision with TOTP, and
the coordinator's pseudonymised view."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.browser.conftest import Server, snap
from tests.builders import registration
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

GIVEN, FAMILY = "Chiamaka", "Ezeonwuka"


def sign_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def complete_totp_enrolment(page: Any) -> None:
    page.wait_for_url("**/mfa")
    page.get_by_role("button", name="Start the setup").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    snap(page, "mfa-enrolment")
    page.get_by_label("Six-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()


def stage_badge(page: Any) -> str:
    return str(page.locator("h1 .badge-stage, h1 .badge-stage-closed").inner_text())


def referred_case(
    server: Server, *, given: str = "Élodie", family: str = "N'Diaye"
) -> tuple[dict[str, Any], Any]:
    """A case registered, screened and referred to a police agency, through the JSON API."""
    live = server.live
    worker, _ = live.user("ngo_caseworker", "ngo")
    officer, police = live.user("police_officer", "police")
    api = live.api(worker)
    body = registration(given_name=given, family_name=family)
    body["consents"] = [{"purpose": "referral", "scope": ["identity"], "given_on": "2026-10-01"}]
    case = api.post("/api/v1/cases", json=body).json()
    url = f"/api/v1/cases/{case['id']}"
    screened = api.post(
        url + "/transitions", json={"event": "record_screening"}, headers={"If-Match": '"1"'}
    )
    assert screened.status_code == 200, screened.text
    shared = api.post(
        url + "/participants",
        json={
            "agency_id": str(police.id),
            "access_role": "police_officer",
            "purpose": "identification",
        },
    )
    assert shared.status_code == 201, shared.text
    referred = api.post(
        url + "/transitions",
        json={"event": "refer"},
        headers={"If-Match": f'"{screened.json()["version"]}"'},
    )
    assert referred.status_code == 200, referred.text
    return case, officer


def test_ngo_caseworker_registers_a_presumed_victim_and_refers_to_police(
    page: Any, server: Server
) -> None:
    worker, _ = server.live.user("ngo_caseworker", "ngo")
    _, police = server.live.user("police_officer", "police")
    sign_in(page, worker.username)
    page.wait_for_url("**/cases")
    page.get_by_role("main").get_by_role("link", name="Register a presumed victim").click()

    # 1. Identity
    page.get_by_label("Given name").fill(GIVEN)
    page.get_by_label("Family name").fill(FAMILY)
    page.get_by_label("Date of birth").fill("1994-06-15")
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Nationalities").select_option(["NG"])
    snap(page, "register-1-identity")
    page.get_by_role("button", name="Continue").click()
    # 2. Vulnerability and contact
    page.get_by_label("Phone").fill("+33 6 98 76 54 32")
    page.get_by_role("button", name="Continue").click()
    # 3. Exploitation and detection, with the indicator checklist
    page.locator("#f-indicators-debt_bondage").check()
    page.locator("#f-indicators-documents_withheld").check()
    page.locator("#f-exploitation_forms-labour").check()
    snap(page, "register-3-exploitation")
    page.get_by_role("button", name="Continue").click()
    # 4. Consent per purpose: referral, covering identity
    page.locator("#f-consent_referral").check()
    page.locator("#f-consent_referral_scope-identity").check()
    page.get_by_role("button", name="Continue").click()
    # 5. Review: what was typed, then register
    assert page.get_by_role("heading", name="Review and register").is_visible()
    assert GIVEN in page.content()
    snap(page, "register-5-review")
    page.get_by_role("button", name="Register", exact=True).click()

    page.wait_for_url("**/registered")
    assert "No possible duplicate" in page.content()
    page.get_by_role("link", name="Open the case").click()
    assert stage_badge(page) == "Detected"
    assert GIVEN not in page.content()  # masked until revealed for a purpose
    page.get_by_role("button", name="Record screening").click()
    assert stage_badge(page) == "Presumed victim"

    referral = page.locator("#referrals form").last
    referral.get_by_label("Agency").select_option(str(police.id))
    referral.get_by_label("They access the case as").select_option("police_officer")
    referral.get_by_label("Purpose of the referral").select_option("identification")
    assert referral.get_by_role("checkbox").is_checked()
    referral.get_by_role("button", name="Share the case").click()
    assert stage_badge(page) == "Referred"
    assert police.name in page.locator("#referrals table").inner_text()
    snap(page, "case-referred")
    assert page.console_errors == []


def test_police_officer_enrols_totp_and_decides_reasonable_grounds(
    page: Any, server: Server
) -> None:
    case, officer = referred_case(server)
    sign_in(page, officer.username)
    complete_totp_enrolment(page)
    page.wait_for_url("**/inbox")
    snap(page, "police-inbox")
    page.get_by_role("link", name=case["reference"]).click()
    page.get_by_role("button", name="Accept the referral").click()
    assert stage_badge(page) == "Reasonable-grounds decision pending"

    decision = page.locator(
        "form", has=page.get_by_role("group", name="Positive reasonable-grounds decision")
    )
    decision.get_by_label("Reasons").fill("Consistent account, documents withheld by employer.")
    assert decision.get_by_label("Legal basis").input_value().startswith("CETS 197")
    snap(page, "police-decision")
    decision.get_by_role("button", name="Positive reasonable-grounds decision").click()
    assert stage_badge(page) == "Recovery and reflection period"
    timeline = page.locator("#timeline").inner_text()
    assert "Positive reasonable-grounds decision" in timeline
    assert "Consistent account" not in page.content()  # the reason is sealed, not shown
    # A second visit asks for a code from the authenticator, not a new enrolment.
    assert page.console_errors == []


def test_coordinator_sees_the_case_by_reference_without_any_name(page: Any, server: Server) -> None:
    case, _ = referred_case(server, given="Yetunde", family="Adebayo-Okonkwo")
    coordinator, _ = server.live.user("coordinator", "coordinator_office")
    sign_in(page, coordinator.username)
    complete_totp_enrolment(page)
    page.wait_for_url("**/coordinator")
    # Keyboard: the first Tab reaches the skip link, which moves focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.get_by_label("Case reference").fill(case["reference"])
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name=case["reference"], exact=True).click()
    assert stage_badge(page) == "Referred"
    content = page.content()
    for value in ("Yetunde", "Adebayo", "N'Diaye", "+33 6 12 34 56 78", "Lilas", "Horizon"):
        assert value not in content
    assert page.locator(".masked").count() == 0
    snap(page, "coordinator-case")
    page.goto(f"/cases/{case['id']}/timeline")
    timeline = page.content()
    assert "Case registered" in timeline
    assert "Yetunde" not in timeline and "Adebayo" not in timeline
    snap(page, "coordinator-timeline")
    assert page.console_errors == []
