"""Every bad package is refused with a clear reason, quarantined (never imported), audited,
raised as an alert and answered with the code; a good one still goes through.

The receiving instance (B) runs as its own uvicorn process; the test posts to it over real
HTTP as the sending instance A (with A's real keys) or as an attacker (with public keys
only)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import OutboxMessage
from app.transnational.models import Exchange, QuarantinedPackage
from tests.transnational import craft
from tests.transnational.conftest import Pair
from tests.transnational.flows import claims_of

CANARY = "Quarantinecanary"


class Attack:
    """What the test knows: A's private keys (as A), B's public keys (as anyone)."""

    def __init__(self, pair: Pair) -> None:
        a, b = pair.a.instance, pair.b.instance
        self.b = b
        self.a_id, self.b_id = a.instance_id, b.instance_id
        self.a_sign = a.signing_private_pem()
        public_a, public_b = a.public_keys(), b.public_keys()
        self.a_sig_public = public_a["sig"]
        self.a_kid = craft.kid_of(public_a["sig"], "sig")
        self.b_enc = public_b["enc"]
        self.b_kid = craft.kid_of(public_b["enc"], "enc")

    def claims(self, **over):
        return craft.referral_claims(self.a_id, self.b_id, given_name=CANARY, **over)

    def signed(self, claims=None, **headers) -> str:
        return craft.sign(claims or self.claims(), self.a_sign, kid=self.a_kid, **headers)

    def sealed(self, jws: str, **extra) -> str:
        return craft.encrypt(jws.encode(), self.b_enc, kid=self.b_kid, **extra)

    def post(self, message: str, attachments: list[str] | None = None) -> httpx.Response:
        return self.post_raw({"message": message, "attachments": attachments or []})

    def post_raw(self, document) -> httpx.Response:
        return httpx.post(self.b.base_url + "/api/v1/exchange/messages", json=document, timeout=60)


@pytest.fixture(scope="module")
def attack(pair: Pair) -> Attack:
    return Attack(pair)


def _exchanges(attack: Attack) -> int:
    with attack.b.session() as s:
        return int(s.scalar(select(func.count()).select_from(Exchange)) or 0)


def test_a_well_formed_package_is_accepted(attack: Attack) -> None:
    before = _exchanges(attack)
    response = attack.post(attack.sealed(attack.signed()))
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["receipt"])["status"] == "received"
    assert _exchanges(attack) == before + 1


CASES: dict[str, tuple[Callable[[Attack], str], str, int]] = {
    "tampered payload": (
        lambda t: t.sealed(craft.tamper_payload(t.signed(), given_name="Someone else")),
        "bad_signature",
        422,
    ),
    "tampered ciphertext": (
        lambda t: craft.flip_ciphertext(t.sealed(t.signed())),
        "undecryptable",
        422,
    ),
    "encrypted to another recipient's key": (
        lambda t: craft.encrypt(
            t.signed().encode(), (pub := craft.rsa_public()), kid=craft.kid_of(pub, "enc")
        ),
        "wrong_recipient_key",
        422,
    ),
    "another recipient's key, our kid claimed": (
        lambda t: craft.encrypt(t.signed().encode(), craft.rsa_public(), kid=t.b_kid),
        "undecryptable",
        422,
    ),
    "addressed to another instance (aud)": (
        lambda t: t.sealed(t.signed(t.claims(aud="urn:passage:xx:elsewhere"))),
        "wrong_audience",
        422,
    ),
    "unknown signer (key not pinned)": (
        lambda t: t.sealed(
            craft.sign(
                t.claims(),
                (pair := craft.ec_pair())[0],
                kid=craft.kid_of(pair[1], "sig"),
            )
        ),
        "unknown_signing_key",
        422,
    ),
    "unknown signer claiming the pinned kid": (
        lambda t: t.sealed(craft.sign(t.claims(), craft.ec_pair()[0], kid=t.a_kid)),
        "bad_signature",
        422,
    ),
    "unknown sender (issuer not in the directory)": (
        lambda t: t.sealed(t.signed(t.claims(iss="urn:passage:zz:stranger"))),
        "unknown_sender",
        422,
    ),
    "expired": (
        lambda t: t.sealed(
            t.signed(
                t.claims(iat=(now := int(__import__("time").time())) - 5 * 86400, exp=now - 86400)
            )
        ),
        "expired",
        422,
    ),
    "alg none": (lambda t: t.sealed(craft.unsigned(t.claims())), "algorithm_not_allowed", 422),
    "HS256 keyed with the sender's public key": (
        lambda t: t.sealed(craft.hs256_with_public_key(t.claims(), t.a_sig_public, kid=t.a_kid)),
        "algorithm_not_allowed",
        422,
    ),
    "JWE with compression": (
        lambda t: t.sealed(t.signed(), compress=True),
        "compressed",
        422,
    ),
    "jku header on the signed package": (
        lambda t: t.signed(jku="https://attacker.example/jwks.json"),
        "forbidden_header",
        422,
    ),
    "jwk header on the signed package": (
        lambda t: t.signed(jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        "forbidden_header",
        422,
    ),
    "jwk header on the JWE": (
        lambda t: t.sealed(t.signed(), jwk={"kty": "RSA", "n": "AA", "e": "AQAB"}),
        "forbidden_header",
        422,
    ),
    "typ of another token kind inside": (
        lambda t: t.sealed(t.signed(typ="at+jwt")),
        "wrong_type",
        422,
    ),
    "content outside the protocol": (
        lambda t: t.sealed(t.signed(t.claims(admin=True))),
        "invalid_content",
        422,
    ),
    "oversize package": (
        lambda t: t.sealed(t.signed(t.claims(jti="x" * 10, pad="p" * 180_000))),
        "oversize",
        413,
    ),
}


def _wrap(name: str, make: Callable[[Attack], str]) -> Callable[[Attack], str]:
    # The JWS-header attacks must still reach the receiver inside a valid JWE.
    if name in ("jku header on the signed package", "jwk header on the signed package"):
        return lambda t: t.sealed(make(t))
    return make


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bad_package_is_refused_and_quarantined(attack: Attack, name: str) -> None:
    make, reason, status = CASES[name]
    message = _wrap(name, make)(attack)
    before = _exchanges(attack)
    response = attack.post(message)
    assert response.status_code == status, (name, response.text)
    error = response.json()["error"]
    assert error["code"] == "package_refused"
    assert error["reason"] == reason, (name, error)
    assert CANARY not in response.text  # the refusal never echoes content
    assert _exchanges(attack) == before  # never imported
    with attack.b.session() as s:
        row = s.get(QuarantinedPackage, uuid.UUID(error["quarantine_id"]))
        assert row is not None and row.reason_code == reason
        if reason != "oversize":
            assert row.body == message  # kept as received: ciphertext, never decrypted content
        assert CANARY not in (row.body or "") and CANARY not in row.reason
        audited = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "transnational_package_quarantined",
                AuditEvent.entity_id == row.id,
            )
        ).one()
        assert audited.details["reason_code"] == reason
        alerts = s.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "alert.transnational_quarantine")
        ).all()
        assert any(a.payload["quarantine_id"] == str(row.id) for a in alerts)


def test_a_replayed_package_id_is_refused_but_a_retry_is_a_duplicate(attack: Attack) -> None:
    jti = str(uuid.uuid4())
    original = attack.sealed(attack.signed(attack.claims(jti=jti)))
    assert attack.post(original).status_code == 200
    before = _exchanges(attack)
    # The identical package again (a retry after a lost answer): idempotent, not imported.
    retry = attack.post(original)
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    # Another package reusing the id: a replay, refused and quarantined.
    replay = attack.post(attack.sealed(attack.signed(attack.claims(jti=jti))))
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"]["reason"] == "replayed"
    assert _exchanges(attack) == before


def test_oversize_request_bodies_are_quarantined_without_content(attack: Attack) -> None:
    response = attack.post_raw({"message": "x" * 850_000, "attachments": []})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["reason"] == "oversize"
    with attack.b.session() as s:
        row = s.get(QuarantinedPackage, uuid.UUID(response.json()["error"]["quarantine_id"]))
        assert row is not None and row.body is None and row.size > 800_000


def test_refusals_to_a_known_partner_carry_a_signed_refusal(attack: Attack, pair: Pair) -> None:
    response = attack.post(attack.sealed(attack.signed(attack.claims(aud="urn:elsewhere"))))
    receipt = response.json()["receipt"]
    claims = claims_of(receipt)
    assert claims["status"] == "refused" and claims["reason"] == "wrong_audience"
    assert claims["iss"] == attack.b_id and claims["aud"] == attack.a_id
    # The administrator sees the quarantine (codes and hashes, never content).
    listing = pair.b.admin.get("/api/v1/transnational/quarantine")
    assert listing.status_code == 200
    assert {"wrong_audience"} <= {q["reason_code"] for q in listing.json()}
    assert CANARY not in listing.text


def test_an_update_for_an_unknown_thread_is_refused(attack: Attack) -> None:
    claims = attack.claims(msg="status", body={"code": "in_review"})
    response = attack.post(attack.sealed(attack.signed(claims, typ="update+jwt"), cty="update+jwt"))
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "unknown_thread"


def test_attachments_must_match_the_signed_manifest(attack: Attack, pair: Pair) -> None:
    import hashlib

    pdf = b"%PDF-1.4 travel document scan"
    claims = attack.claims()
    claims["body"]["attachments"] = [
        {
            "id": str(uuid.uuid4()),
            "media_type": "application/pdf",
            "size": len(pdf),
            "sha256": hashlib.sha256(pdf).hexdigest(),
        }
    ]
    token = attack.sealed(attack.signed(claims))
    swapped = craft.encrypt(
        b"%PDF-1.4 another file", attack.b_enc, kid=attack.b_kid, cty="passage-attachment"
    )
    refused = attack.post(token, [swapped])
    assert refused.status_code == 422
    assert refused.json()["error"]["reason"] == "attachment_mismatch"
    missing = attack.post(attack.sealed(attack.signed(claims)), [])
    assert missing.json()["error"]["reason"] == "attachment_mismatch"
    good = craft.encrypt(pdf, attack.b_enc, kid=attack.b_kid, cty="passage-attachment")
    accepted = attack.post(token, [good])
    assert accepted.status_code == 200, accepted.text
    # The receiving focal point reads the attachment back (sealed at rest, audited).
    with attack.b.session() as s:
        exchange_id = s.scalars(
            select(Exchange.id).where(Exchange.thread_id == uuid.UUID(claims["thread"]))
        ).one()
    focal = pair.b.focal_point
    package = focal.get(f"/api/v1/transnational/exchanges/{exchange_id}/package").json()
    [listed] = package["attachments"]
    assert listed["sha256"] == hashlib.sha256(pdf).hexdigest()
    download = focal.get(
        f"/api/v1/transnational/exchanges/{exchange_id}/attachments/{listed['id']}"
    )
    assert download.status_code == 200 and download.content == pdf
    assert download.headers["content-type"] == "application/pdf"
