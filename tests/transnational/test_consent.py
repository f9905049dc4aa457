"""Consent governs what leaves and whether anything leaves at all.

* Fields outside the consent's scope, outside the purpose's minimal dataset, or in groups
  that never leave, are absent from the package: the test decrypts the very JWE waiting in
  the sending instance's outbox with the receiving instance's private key and searches the
  plaintext for canary values.
* Withdrawing consent stops every further sending (queued messages are cancelled and never
  reach the partner), tells the partner that holds the package (which crypto-shreds it),
  and refuses new packages.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jose import jwe, jws
from sqlalchemy import func, select

from app.transnational.models import Exchange, ExchangeMessage
from tests.transnational.conftest import Pair
from tests.transnational.flows import claims_of, returning_case

CANARIES = {
    "health_notes": "Canary-health-4410",  # group "health": never in the consent below
    "current_address": "Canary-address-4411",  # group "location": never leaves
    "accommodation": "Canary-shelter-4412",  # group "accommodation": never leaves
    "phone": "+33 6 44 13 44 13",  # group "contact": consented, not needed to prepare return
}
CASE_CANARIES = {
    "statement_summary": "Canary-statement-4414",  # "statements": consented, never leaves
    "needs_assessment": "Canary-needs-4415",  # "needs": consented, needed for return
}


def _queued_token(pair: Pair, jti: str) -> str:
    with pair.a.instance.session() as s:
        token = s.scalars(select(ExchangeMessage.token).where(ExchangeMessage.jti == jti)).one()
    assert token is not None
    return token


def _decrypt_as_b(pair: Pair, token: str) -> dict[str, Any]:
    """Open the JWE with B's private key and check A's signature: the package as B sees it."""
    signed = jwe.decrypt(token, pair.b.instance.encryption_private_pem()).decode()
    payload = jws.verify(signed, pair.a.instance.public_keys()["sig"], algorithms=["ES256"])
    assert claims_of(signed)["jti"]
    return {"signed": signed, "plain": payload.decode()}


@pytest.mark.parametrize(
    ("purpose", "expected_groups"),
    [
        ("return_preparation", ["documents", "identity", "needs", "vulnerability"]),
        ("request_for_information", ["documents", "identity"]),
        (
            "case_management_handover",
            ["contact", "documents", "identity", "needs", "vulnerability"],
        ),
    ],
)
def test_fields_outside_consent_or_purpose_never_leave(
    pair: Pair, purpose: str, expected_groups: list[str]
) -> None:
    a = pair.a
    setup = returning_case(
        a,
        scope=[
            "identity",
            "documents",
            "contact",
            "vulnerability",
            "needs",
            "statements",
            "location",
        ],
        recipient_agency_id=a.partner_agency_id,
        case_fields=CASE_CANARIES,
        **CANARIES,
    )
    sent = a.focal_point.post(
        f"/api/v1/transnational/cases/{setup.case_id}/referrals",
        json={"partner_id": a.partner_id, "purpose": purpose},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["groups"] == expected_groups
    token = _queued_token(pair, sent.json()["jti"])
    package = _decrypt_as_b(pair, token)
    body = claims_of(package["signed"])["body"]
    assert body["groups"] == expected_groups
    assert body["data"]["victim"]["given_name"] == "Élodie"  # consented identity is there
    plain = package["plain"]
    for name, canary in CANARIES.items():
        if name == "phone" and "contact" in expected_groups:
            assert canary in plain  # consented and needed for this purpose
            continue
        assert canary not in plain, (purpose, name)
        assert name not in body["data"]["victim"], (purpose, name)
    assert CASE_CANARIES["statement_summary"] not in plain  # statements never leave
    if "needs" in expected_groups:
        assert body["data"]["case"]["needs_assessment"] == CASE_CANARIES["needs_assessment"]
    else:
        assert CASE_CANARIES["needs_assessment"] not in plain


def test_withdrawal_stops_sending_and_notifies_the_partner(pair: Pair) -> None:
    a, b = pair.a, pair.b
    setup = returning_case(
        a, scope=["identity", "documents", "needs"], recipient_agency_id=a.partner_agency_id
    )
    case_url = f"/api/v1/transnational/cases/{setup.case_id}"
    first = a.focal_point.post(
        f"{case_url}/referrals",
        json={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert first.status_code == 202, first.text
    assert a.instance.dispatch().delivered >= 1
    thread_id = a.focal_point.get(
        f"/api/v1/transnational/exchanges/{first.json()['exchange_id']}"
    ).json()["thread_id"]
    with b.instance.session() as s:
        before_b = s.scalar(select(func.count()).select_from(Exchange))
        thread_b = s.scalars(
            select(Exchange).where(Exchange.thread_id == uuid.UUID(thread_id))
        ).one()
    # A second package is queued but not yet delivered when the person withdraws consent.
    second = a.focal_point.post(
        f"{case_url}/referrals", json={"partner_id": a.partner_id, "purpose": "return_preparation"}
    )
    assert second.status_code == 202, second.text

    worker = a.instance.login(setup.worker)
    withdrawn = worker.post(
        f"/api/v1/cases/{setup.case_id}/consents/"
        f"{setup.consent_ids['data_sharing_transnational']}/withdrawal"
    )
    assert withdrawn.status_code == 200, withdrawn.text

    report = a.instance.dispatch()
    assert report.withdrawals == 2, report
    assert report.delivered == 1, report  # only the notice to the partner
    second_thread = a.focal_point.get(
        f"/api/v1/transnational/exchanges/{second.json()['exchange_id']}"
    ).json()
    assert second_thread["status"] == "consent_withdrawn"
    assert [m["state"] for m in second_thread["messages"]] == ["cancelled"]
    assert second_thread["content_shredded"] is True
    first_thread = a.focal_point.get(
        f"/api/v1/transnational/exchanges/{first.json()['exchange_id']}"
    ).json()
    assert first_thread["status"] == "consent_withdrawn"
    assert [m["msg_type"] for m in first_thread["messages"]] == ["referral", "consent_withdrawn"]
    assert first_thread["messages"][1]["state"] == "delivered"

    # The partner was told and shredded what it held; the queued package never arrived.
    with b.instance.session() as s:
        assert s.scalar(select(func.count()).select_from(Exchange)) == before_b
        told = s.get(Exchange, thread_b.id)
        assert told is not None and told.status == "consent_withdrawn"
        assert told.shredded_at is not None
    erased = b.focal_point.get(f"/api/v1/transnational/exchanges/{thread_b.id}/package")
    assert erased.status_code == 410, erased.text

    # Nothing further may be sent.
    refused = a.focal_point.post(
        f"{case_url}/referrals",
        json={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "consent_required"
    preview = a.focal_point.get(
        f"{case_url}/package-preview",
        params={"partner_id": a.partner_id, "purpose": "request_for_information"},
    ).json()
    assert preview["consent_ok"] is False
    assert preview["problems"] == ["no_valid_consent_for_this_recipient_and_purpose"]
    assert preview["groups"] == []
