"""The focal-point directory: institutions with deputies, keys pinned out of band only,
fingerprint checks, rotation per partner (kid), retirement and revocation; threads are
visible only to the focal point handling them and the organisation named to receive."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.db.base import utcnow
from app.transnational.keys import parse_public_key
from app.transnational.models import Evidence
from tests.transnational import craft
from tests.transnational.conftest import Pair, contacts, free_port
from tests.transnational.flows import claims_of, returning_case


def _partner_json(pair: Pair, **over):
    body = {
        "country": "NE",
        "institution": "Agence nationale de lutte contre la traite",
        "instance_id": "urn:passage:ne:test",
        "base_url": pair.b.instance.base_url,
        "working_languages": ["fr", "ha"],
        "last_verified_on": "2026-10-15",
        "contacts": contacts(),
    }
    body.update(over)
    return body


def test_directory_rules(pair: Pair) -> None:
    admin, focal = pair.a.admin, pair.a.focal_point
    # Focal points read the directory; only administrators change it.
    assert focal.get("/api/v1/transnational/partners").status_code == 200
    assert focal.post("/api/v1/transnational/partners", json=_partner_json(pair)).status_code == 403
    # Contacts belong to the institution and need a deputy.
    primary_only = _partner_json(pair, contacts=[contacts()[0], contacts()[0]])
    refused = admin.post("/api/v1/transnational/partners", json=primary_only)
    assert refused.status_code == 422 and "deputy" in refused.text
    created = admin.post("/api/v1/transnational/partners", json=_partner_json(pair))
    assert created.status_code == 201, created.text
    partner = created.json()
    assert {c["rank"] for c in partner["contacts"]} == {"primary", "deputy"}
    assert partner["keys"] == []
    keys_url = f"/api/v1/transnational/partners/{partner['id']}/keys"

    b_keys = pair.b.instance.public_keys()
    # Wrong kind of key for the use, private keys, and a wrong fingerprint are all refused.
    assert admin.post(keys_url, json={"use": "sig", "pem": b_keys["enc"]}).status_code == 422
    assert (
        admin.post(
            keys_url, json={"use": "sig", "pem": pair.b.instance.signing_private_pem()}
        ).status_code
        == 422
    )
    mismatch = admin.post(
        keys_url,
        json={"use": "sig", "pem": b_keys["sig"], "expected_fingerprint": "A" * 43},
    )
    assert mismatch.status_code == 409
    assert mismatch.json()["error"]["code"] == "fingerprint_mismatch"
    # Fetching from the directory address pins only the key whose fingerprint was typed.
    fetch_url = f"{keys_url}/fetch"
    wrong = admin.post(fetch_url, json={"use": "sig", "fingerprint": "B" * 43})
    assert wrong.status_code == 409
    fingerprint = parse_public_key(b_keys["sig"], "sig").kid
    spaced = " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))
    fetched = admin.post(fetch_url, json={"use": "sig", "fingerprint": spaced})
    assert fetched.status_code == 201, fetched.text
    assert fetched.json()["kid"] == fingerprint and fetched.json()["pinned_via"] == "fingerprint"
    listed = admin.get(f"/api/v1/transnational/partners/{partner['id']}").json()
    assert [k["kid"] for k in listed["keys"]] == [fingerprint]
    with pair.a.instance.session() as s:
        refusals = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "transnational_key_pin_refused")
        ).all()
        assert {e.details["reason"] for e in refusals} == {
            "fingerprint_mismatch",
            "fingerprint_not_published",
        }
    # The published key list is public; it holds public keys only.
    published = httpx.get(pair.b.instance.base_url + "/api/v1/exchange/keys", timeout=30).json()
    assert published["instance_id"] == pair.b.instance.instance_id
    assert all("PRIVATE" not in k["pem"] for k in published["keys"])


def test_threads_are_visible_only_to_their_focal_point_and_receiver(pair: Pair) -> None:
    a = pair.a
    setup = returning_case(a, scope=["identity"], recipient_agency_id=a.partner_agency_id)
    sent = a.focal_point.post(
        f"/api/v1/transnational/cases/{setup.case_id}/referrals",
        json={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert sent.status_code == 202, sent.text
    exchange_id = sent.json()["exchange_id"]
    other_office = a.instance.agency("coordinator_office")
    outsider = a.instance.login(a.instance.user("focal_point", other_office))
    ngo_worker = a.instance.login(a.instance.user("ngo_caseworker", a.instance.agency("ngo")))
    for user in (outsider, ngo_worker):
        response = user.get(f"/api/v1/transnational/exchanges/{exchange_id}")
        assert response.status_code == 404, response.text
        assert response.json() == {"error": {"code": "not_found", "message": "Not found"}}
    # A focal point of another agency cannot even preview a case it has no share in.
    preview = outsider.get(
        f"/api/v1/transnational/cases/{setup.case_id}/package-preview",
        params={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert preview.status_code == 404
    assert outsider.get("/api/v1/transnational/exchanges").json()["items"] == []
    with a.instance.session() as s:
        denied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "access_denied",
                AuditEvent.actor_user_id == outsider.user.id,
            )
        ).all()
        assert {e.entity_type for e in denied} == {"transnational_exchange", "case"}


def test_the_outbox_retries_until_the_partner_answers(pair: Pair) -> None:
    """A partner that is down leaves the message queued with a back-off; nothing is lost,
    nothing is sent twice, and the next run after the back-off delivers it."""
    a = pair.a
    a.instance.dispatch()  # deliver what earlier tests of this module left in the outbox
    partner_url = f"/api/v1/transnational/partners/{a.partner_id}"
    down = a.admin.patch(partner_url, json={"base_url": f"http://127.0.0.1:{free_port()}"})
    assert down.status_code == 200, down.text
    setup = returning_case(a, scope=["identity"], recipient_agency_id=a.partner_agency_id)
    sent = a.focal_point.post(
        f"/api/v1/transnational/cases/{setup.case_id}/referrals",
        json={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert sent.status_code == 202
    report = a.instance.dispatch()
    assert report.retrying == 1 and report.delivered == 0, report
    thread_url = f"/api/v1/transnational/exchanges/{sent.json()['exchange_id']}"
    [message] = a.focal_point.get(thread_url).json()["messages"]
    assert message["state"] == "queued" and message["attempts"] == 1
    assert message["last_error"].startswith("network:")
    assert a.instance.dispatch().retrying == 0  # backing off: not attempted again yet
    up = a.admin.patch(partner_url, json={"base_url": pair.b.instance.base_url})
    assert up.status_code == 200
    report = a.instance.dispatch(now=utcnow() + timedelta(minutes=5))
    assert report.delivered == 1, report
    thread = a.focal_point.get(thread_url).json()
    assert thread["status"] == "delivered"
    assert thread["messages"][0]["attempts"] == 2


def test_key_rotation_retirement_and_revocation(pair: Pair) -> None:
    """B pins A's rotated signing key (a new kid) next to the old one; both verify during the
    overlap; the retired key is refused for new packages but still verifies old evidence;
    a revoked key is refused."""
    a, b = pair.a, pair.b
    a_id, b_id = a.instance.instance_id, b.instance.instance_id
    b_enc = b.instance.public_keys()["enc"]
    b_kid = craft.kid_of(b_enc, "enc")
    old_private = a.instance.signing_private_pem()
    old_kid = craft.kid_of(a.instance.public_keys()["sig"], "sig")
    new_private, new_public = craft.ec_pair()
    new_kid = craft.kid_of(new_public, "sig")

    def deliver(private: str, kid: str) -> httpx.Response:
        token = craft.sign(craft.referral_claims(a_id, b_id), private, kid=kid)
        return httpx.post(
            b.instance.base_url + "/api/v1/exchange/messages",
            json={"message": craft.encrypt(token.encode(), b_enc, kid=b_kid), "attachments": []},
            timeout=30,
        )

    keys_url = f"/api/v1/transnational/partners/{b.partner_id}/keys"
    assert deliver(new_private, new_kid).json()["error"]["reason"] == "unknown_signing_key"
    pinned = b.admin.post(
        keys_url, json={"use": "sig", "pem": new_public, "expected_fingerprint": new_kid}
    )
    assert pinned.status_code == 201, pinned.text
    assert deliver(new_private, new_kid).status_code == 200
    overlap = deliver(old_private, old_kid)  # both keys verify during the overlap
    assert overlap.status_code == 200
    old_jti = claims_of(overlap.json()["receipt"])["re"]
    retired = b.admin.post(f"{keys_url}/{old_kid}/status", json={"status": "retired"})
    assert retired.status_code == 200, retired.text
    assert deliver(old_private, old_kid).json()["error"]["reason"] == "key_retired"
    assert deliver(new_private, new_kid).status_code == 200
    revoke_without_reason = b.admin.post(f"{keys_url}/{new_kid}/status", json={"status": "revoked"})
    assert revoke_without_reason.status_code == 422
    revoked = b.admin.post(
        f"{keys_url}/{new_kid}/status", json={"status": "revoked", "reason_code": "compromised"}
    )
    assert revoked.status_code == 200, revoked.text
    assert deliver(new_private, new_kid).json()["error"]["reason"] == "key_revoked"
    # Evidence signed with the retired key still verifies, and says which key it was.
    with b.instance.session() as s:
        evidence_id = s.scalars(
            select(Evidence.id).where(Evidence.jti == old_jti, Evidence.kind == "package_received")
        ).one()
    evidence = b.focal_point.get(f"/api/v1/transnational/evidence/{evidence_id}").json()
    assert evidence["signature_valid"] is True
    assert evidence["signing_key_status"] == "retired"
    assert evidence["signing_kid"] == old_kid

    # Encryption-key rotation on the sending side: the newest active key is used.
    stray = craft.rsa_public()
    a_keys = f"/api/v1/transnational/partners/{a.partner_id}/keys"
    assert a.admin.post(a_keys, json={"use": "enc", "pem": stray}).status_code == 201
    setup = returning_case(a, scope=["identity"], recipient_agency_id=a.partner_agency_id)
    sent = a.focal_point.post(
        f"/api/v1/transnational/cases/{setup.case_id}/referrals",
        json={"partner_id": a.partner_id, "purpose": "request_for_information"},
    )
    assert sent.status_code == 202
    assert a.instance.dispatch().refused >= 1  # B cannot decrypt: encrypted to the newest key
    thread = a.focal_point.get(f"/api/v1/transnational/exchanges/{sent.json()['exchange_id']}")
    assert thread.json()["status"] == "refused_by_partner"
    assert thread.json()["messages"][0]["refusal_reason"] == "wrong_recipient_key"
