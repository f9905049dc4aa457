"""A return referral between two real instances, end to end, over real HTTP.

Sending country (A, "PT") -> receiving country (B, "SN"): consent check and preview, signed
and encrypted package through the outbox, signed receipt, acceptance naming the receiving
organisation, joint risk assessment, travel, arrival opening a case on B in
reintegration_monitoring (new victim record, new data key), hand-over confirmed on A, the
reintegration plan and allowance on B, a follow-up report at a checkpoint, re-trafficking
re-opening detection on B and alerting A. Each side's timeline links the signed evidence,
which verifies again against the pinned keys.
"""

from __future__ import annotations

import hashlib
import uuid

import httpx
from sqlalchemy import func, select

from app.cases.models import Case
from app.crypto.models import DataKey
from app.transnational.models import Exchange, ExchangeMessage
from app.victims.models import Victim
from tests.transnational.conftest import Pair
from tests.transnational.flows import TODAY, case_version, claims_of, returning_case

SCOPE = ["identity", "documents", "vulnerability", "needs", "location", "statements"]
HEALTH_CANARY = "Canary-health-7731: not consented"
ADDRESS_CANARY = "Canary-address-5521 rue du Port"


def _timeline(user, case_id: str) -> list[dict]:
    response = user.get(f"/api/v1/cases/{case_id}/timeline")
    assert response.status_code == 200, response.text
    return response.json()


def test_return_referral_end_to_end(pair: Pair) -> None:
    a, b = pair.a, pair.b
    setup = returning_case(
        a,
        scope=SCOPE,
        recipient_agency_id=a.partner_agency_id,
        health_notes=HEALTH_CANARY,
        current_address=ADDRESS_CANARY,
    )
    case_url = f"/api/v1/transnational/cases/{setup.case_id}"

    # -- preview and consent check: names only, exactly what will leave ---------------------
    preview = a.focal_point.get(
        f"{case_url}/package-preview",
        params={"partner_id": a.partner_id, "purpose": "return_preparation"},
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["consent_ok"] is True, shown
    assert shown["groups"] == ["documents", "identity", "needs", "vulnerability"]
    assert "given_name" in shown["fields"] and "family_name" in shown["fields"]
    assert "health_notes" not in shown["fields"] and "current_address" not in shown["fields"]
    assert shown["excluded_groups"]["health"] == "not_covered_by_consent"
    assert shown["excluded_groups"]["location"] == "never_leaves_the_country"
    assert shown["excluded_groups"]["statements"] == "never_leaves_the_country"
    assert shown["excluded_groups"]["exploitation"] == "not_needed_for_this_purpose"
    assert HEALTH_CANARY not in preview.text and "lodie" not in preview.text  # no values

    # -- send: queued in the outbox with its audit event ------------------------------------
    sent = a.focal_point.post(
        f"{case_url}/referrals", json={"partner_id": a.partner_id, "purpose": "return_preparation"}
    )
    assert sent.status_code == 202, sent.text
    queued = sent.json()
    assert queued["status"] == "queued"
    assert queued["fields"] == shown["fields"]
    exchange_a = queued["exchange_id"]
    outbox = a.focal_point.get("/api/v1/transnational/exchanges", params={"direction": "outgoing"})
    row = next(e for e in outbox.json()["items"] if e["id"] == exchange_a)
    assert row["status"] == "queued"
    assert [d["kind"] for d in row["due"]] == ["acknowledgement"]
    with a.instance.session() as s:
        wire = s.scalars(
            select(ExchangeMessage.token).where(ExchangeMessage.jti == queued["jti"])
        ).one()
    assert wire is not None and wire.count(".") == 4  # only ciphertext waits in the outbox
    assert HEALTH_CANARY not in wire and "lodie" not in wire

    # -- delivery over HTTP: B verifies, stores evidence, answers with a signed receipt -------
    report = a.instance.dispatch()
    assert report.delivered == 1 and not report.problems, report
    detail = a.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_a}").json()
    assert detail["status"] == "delivered"
    [message] = detail["messages"]
    assert message["state"] == "delivered" and message["receipt_evidence_id"]
    assert detail["due"] == []

    # Idempotent by package id: the same JWE again is answered as a duplicate, not imported.
    again = httpx.post(
        b.instance.base_url + "/api/v1/exchange/messages",
        json={"message": wire, "attachments": []},
        timeout=30,
    )
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert claims_of(again.json()["receipt"])["status"] == "duplicate"
    with b.instance.session() as s:
        assert s.scalar(select(func.count()).select_from(Exchange)) == 1

    # -- B: inbox, review (audited), accept naming the receiving organisation -----------------
    inbox = b.focal_point.get("/api/v1/transnational/exchanges", params={"direction": "incoming"})
    [incoming] = inbox.json()["items"]
    exchange_b = incoming["id"]
    assert incoming["status"] == "received" and incoming["purpose"] == "return_preparation"
    assert [d["kind"] for d in incoming["due"]] == ["decision"]
    assert incoming["remote_case_reference"] == setup.reference
    package = b.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_b}/package")
    assert package.status_code == 200, package.text
    content = package.json()
    assert content["data"]["victim"]["given_name"] == "Élodie"
    assert "health_notes" not in content["data"]["victim"]
    assert "current_address" not in content["data"]["victim"]
    assert content["data"]["case"] == {}  # needs were empty; statements never leave
    assert HEALTH_CANARY not in package.text and ADDRESS_CANARY not in package.text
    assert content["context"] == {"age_band": "adult", "classification": "undetermined"}

    receiving_ngo = b.instance.agency("ngo", name="Centre d'accueil Dakar")
    accepted = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/accept",
        json={"receiving_agency_id": str(receiving_ngo.id)},
    )
    assert accepted.status_code == 200, accepted.text
    assert b.instance.dispatch().delivered == 1
    detail = a.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_a}").json()
    assert detail["status"] == "accepted"
    assert detail["receiving_organisation_name"] == "Centre d'accueil Dakar"

    # -- A: travel cannot be arranged before the hand-over guards pass -----------------------
    early = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/logistics",
        json={"travel_on": TODAY.isoformat(), "mode": "air", "escort": True},
    )
    assert early.status_code == 409, early.text
    assert early.json()["error"]["code"] == "risk_assessment_required"

    version = case_version(a, setup.case_id)
    confirmed = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/receiving-organisation/confirm",
        headers={"If-Match": f'"{version}"'},
    )
    assert confirmed.status_code == 200, confirmed.text

    # -- joint pre-return risk assessment: each side fills its part ---------------------------
    part_a = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/risk-assessment",
        json={"risk_level": "low", "assessment": "No contact from recruiters since March."},
    )
    assert part_a.status_code == 200, part_a.text
    part_b = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/risk-assessment",
        json={"risk_level": "medium", "assessment": "Family supportive; recruiter lives nearby."},
    )
    assert part_b.status_code == 200, part_b.text
    assert a.instance.dispatch().delivered == 1
    assert b.instance.dispatch().delivered == 1
    version = case_version(a, setup.case_id)
    final = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/risk-assessment/finalise",
        headers={"If-Match": f'"{version}"'},
    )
    assert final.status_code == 200, final.text

    # -- travel and escort, then arrival on B opens a case there ------------------------------
    travel = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/logistics",
        json={
            "travel_on": TODAY.isoformat(),
            "mode": "air",
            "escort": True,
            "arrival_point": "Dakar airport, arrivals hall",
        },
    )
    assert travel.status_code == 200, travel.text
    assert a.instance.dispatch().delivered == 1
    assert b.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_b}").json()["status"] == (
        "travel_arranged"
    )
    with b.instance.session() as s:
        victims_before = s.scalar(select(func.count()).select_from(Victim))

    # The focal point cannot open the case: the named receiving organisation does.
    refused = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/arrival",
        json={"arrived_on": TODAY.isoformat()},
    )
    assert refused.status_code == 403, refused.text
    receiver = b.instance.login(b.instance.user("ngo_caseworker", receiving_ngo))
    arrival = receiver.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/arrival",
        json={"arrived_on": TODAY.isoformat()},
    )
    assert arrival.status_code == 200, arrival.text
    case_b = arrival.json()["case_id"]
    b_case = receiver.get(f"/api/v1/cases/{case_b}")
    assert b_case.status_code == 200, b_case.text
    assert b_case.json()["stage"] == "reintegration_monitoring"
    assert b_case.json()["victim"]["given_name"] == "Élodie"
    assert b_case.json()["victim"].get("health_notes") is None
    with b.instance.session() as s:
        assert s.scalar(select(func.count()).select_from(Victim)) == victims_before + 1
        stored = s.get(Case, uuid.UUID(case_b))
        assert stored is not None
        key = s.scalars(select(DataKey).where(DataKey.victim_id == stored.victim_id)).one()
        assert key.kek_kid in b.instance.ctx.keys.keyring.usable_kids()  # B's own key ring
        victim = s.get(Victim, stored.victim_id)
        assert victim is not None and b"lodie" not in (victim.given_name or b"")  # sealed
    assert b.instance.dispatch().delivered == 1
    assert a.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_a}").json()["status"] == (
        "arrived"
    )

    # -- A confirms the hand-over: its case moves to returned_handed_over --------------------
    version = case_version(a, setup.case_id)
    handover = a.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_a}/handover",
        headers={"If-Match": f'"{version}"'},
    )
    assert handover.status_code == 200, handover.text
    state = a.focal_point.get(f"/api/v1/cases/{setup.case_id}/transitions").json()
    assert state["stage"] == "returned_handed_over"
    assert a.instance.dispatch().delivered == 1
    b_thread = b.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_b}").json()
    assert b_thread["status"] == "monitoring"
    assert b_thread["follow_up_checkpoints_days"] == [30, 90, 180, 365]
    assert [d["checkpoint_days"] for d in b_thread["due"]] == [30, 90, 180, 365]

    # -- B: reintegration plan and allowance; follow-up report with consent --------------------
    version = case_version(b, case_b)
    plan = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/reintegration",
        json={
            "plan": "Vocational training in tailoring; monthly psychosocial support.",
            "allowance_amount": 150000,
            "allowance_currency": "XOF",
            "allowance_schedule": "three monthly instalments",
        },
        headers={"If-Match": f'"{version}"'},
    )
    assert plan.status_code == 200, plan.text
    without_consent = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/follow-ups",
        json={"checkpoint_days": 30, "status": "in_contact_stable"},
    )
    assert without_consent.status_code == 409
    assert without_consent.json()["error"]["code"] == "consent_required"
    consent = receiver.post(
        f"/api/v1/cases/{case_b}/consents",
        json={
            "purpose": "data_sharing_transnational",
            "recipient_agency_id": b.partner_agency_id,
            "scope": ["needs"],
            "given_on": TODAY.isoformat(),
        },
    )
    assert consent.status_code == 201, consent.text
    follow_up = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/follow-ups",
        json={
            "checkpoint_days": 30,
            "status": "in_contact_stable",
            "summary": "Attends training; lives with her aunt.",
        },
    )
    assert follow_up.status_code == 200, follow_up.text
    report = b.instance.dispatch()
    assert report.delivered == 2, report  # the reintegration status and the report
    a_thread = a.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_a}").json()
    assert a_thread["status"] == "monitoring"
    follow_ups = [r for r in a_thread["records"] if r["kind"] == "follow_up"]
    assert follow_ups and follow_ups[0]["codes"] == {
        "checkpoint_days": 30,
        "status": "in_contact_stable",
    }
    assert 30 not in [d["checkpoint_days"] for d in a_thread["due"]]

    # -- re-trafficking on B re-opens detection there and alerts A ---------------------------
    version = case_version(b, case_b)
    alert = b.focal_point.post(
        f"/api/v1/transnational/exchanges/{exchange_b}/re-trafficking",
        json={"reason": "Recruited again by the same network in Thiès."},
        headers={"If-Match": f'"{version}"'},
    )
    assert alert.status_code == 200, alert.text
    assert alert.json()["partner_notified"] is True
    assert receiver.get(f"/api/v1/cases/{case_b}").json()["stage"] == "detected"
    assert b.instance.dispatch().delivered == 1
    a_thread = a.focal_point.get(f"/api/v1/transnational/exchanges/{exchange_a}").json()
    assert a_thread["re_trafficking_reported_at"] is not None

    # -- each side's timeline links the signed evidence, which verifies again ----------------
    a_events = _timeline(a.focal_point, setup.case_id)
    actions = [e["action"] for e in a_events]
    for expected in (
        "transnational_package_previewed",
        "transnational_message_queued",
        "transnational_receipt_received",
        "transnational_message_received",
    ):
        assert expected in actions, expected
    queued_event = next(
        e
        for e in a_events
        if e["action"] == "transnational_message_queued" and e["details"]["msg_type"] == "referral"
    )
    assert set(queued_event["fields"]) == set(shown["fields"])  # names only, never values
    received = {
        e["details"]["msg_type"]: e["details"]
        for e in a_events
        if e["action"] == "transnational_message_received"
    }
    assert {
        "accepted",
        "risk_assessment",
        "arrival_confirmed",
        "follow_up",
        "re_trafficking",
    } <= set(received)
    for msg_type in ("accepted", "follow_up"):
        evidence = a.focal_point.get(
            f"/api/v1/transnational/evidence/{received[msg_type]['evidence_id']}"
        ).json()
        assert evidence["signature_valid"] is True, evidence
        assert evidence["issuer"] == b.instance.instance_id
        assert (
            hashlib.sha256(evidence["token"].encode()).hexdigest() == received[msg_type]["sha256"]
        )
        assert claims_of(evidence["token"])["msg"] == msg_type
    receipt_event = next(e for e in a_events if e["action"] == "transnational_receipt_received")
    receipt = a.focal_point.get(
        f"/api/v1/transnational/evidence/{receipt_event['details']['evidence_id']}"
    ).json()
    assert receipt["signature_valid"] is True and receipt["typ"] == "receipt+jwt"
    assert claims_of(receipt["token"])["sha256"] == queued_event["details"]["sha256"]

    b_events = _timeline(b.focal_point, case_b)
    opened = next(e for e in b_events if e["action"] == "case_opened_from_transnational_handover")
    assert opened["details"]["from"] == "detected"
    assert opened["details"]["to"] == "reintegration_monitoring"
    package_evidence = b.focal_point.get(
        f"/api/v1/transnational/evidence/{opened['details']['evidence_id']}"
    ).json()
    assert package_evidence["signature_valid"] is True
    assert package_evidence["typ"] == "referral+jwt"
    assert package_evidence["issuer"] == a.instance.instance_id
    assert package_evidence["sha256"] == queued_event["details"]["sha256"]  # the very package
    assert claims_of(package_evidence["token"])["jti"] == queued["jti"]
    assert HEALTH_CANARY not in package_evidence["token"]
    linked = [e for e in b_events if e["action"] == "transnational_evidence_linked"]
    assert {e["details"]["msg_type"] for e in linked} >= {"risk_assessment", "logistics"}
    assert "transition" in [e["action"] for e in b_events]  # re-trafficking re-opened detection

    # Nothing personal reached either server's logs.
    for inst in (a.instance, b.instance):
        log = inst.server_log()
        assert "lodie" not in log and HEALTH_CANARY not in log and "Thiès" not in log
