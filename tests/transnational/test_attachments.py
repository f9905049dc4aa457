"""Attachments travel as separate encrypted parts (one JWE each, to the partner's key),
listed with size and SHA-256 in the signed package, within size limits on both sides."""

from __future__ import annotations

import base64
import hashlib
import json

from jose import jwe
from sqlalchemy import select

from app.transnational.models import Attachment, ExchangeMessage
from tests.transnational import craft
from tests.transnational.single import INSTANCE_ID, PARTNER_ID, configure, shared_case

PDF = b"%PDF-1.4\n" + b"Travel document scan " * 200


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_attachments_are_separate_encrypted_parts_within_limits(world, api, ctx, session):
    p = configure(world, api, ctx)
    case_id, _ = shared_case(
        session,
        world,
        ctx,
        p.office,
        consents=[
            {
                "purpose": "data_sharing_transnational",
                "recipient_agency_id": p.partner_agency_id,
                "scope": ["identity", "documents"],
            }
        ],
    )
    url = f"/api/v1/transnational/cases/{case_id}/referrals"
    base = {"partner_id": p.partner_id, "purpose": "request_for_information"}

    def send(*attachments: dict[str, str]):
        return p.focal.post(url, json={**base, "attachments": list(attachments)})

    too_big = send(
        {"media_type": "application/pdf", "content_base64": _b64(b"%PDF-" + b"x" * 131_072)}
    )
    assert too_big.status_code == 422 and "at most 128 KiB" in too_big.text
    disguised = send(
        {"media_type": "application/pdf", "content_base64": _b64(b"MZ\x90\x00 not a pdf")}
    )
    assert disguised.status_code == 422 and "does not match its declared type" in disguised.text
    four = send(*[{"media_type": "application/pdf", "content_base64": _b64(PDF)}] * 4)
    assert four.status_code == 422

    sent = send({"media_type": "application/pdf", "content_base64": _b64(PDF)})
    assert sent.status_code == 202, sent.text
    message = session.scalars(
        select(ExchangeMessage).where(ExchangeMessage.jti == sent.json()["jti"])
    ).one()
    assert message.token is not None and message.attachment_tokens is not None
    [part] = message.attachment_tokens
    assert part.count(".") == 4 and part not in message.token  # its own JWE
    # The partner opens the part with its own key: the very file, nothing else.
    assert jwe.decrypt(part, p.partner_enc_private) == PDF
    header = json.loads(base64.urlsafe_b64decode(part.split(".")[0] + "=="))
    assert header["alg"] == "RSA-OAEP-256" and header["enc"] == "A256GCM" and "zip" not in header
    # The signed package lists it by size and digest, and does not carry the file.
    signed = jwe.decrypt(message.token, p.partner_enc_private).decode()
    claims = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))
    [listed] = claims["body"]["attachments"]
    assert listed["size"] == len(PDF) and listed["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert _b64(PDF)[:200] not in signed
    # Our copy is sealed at rest under the exchange key.
    stored = session.scalars(select(Attachment).where(Attachment.message_jti == message.jti)).one()
    assert stored.content is not None and PDF[:40] not in stored.content


def test_an_oversize_incoming_attachment_is_refused(world, api, ctx, client, session):
    p = configure(world, api, ctx)
    big = b"%PDF-" + b"y" * 150_000  # above 128 KiB: its JWE is above the part limit
    claims = craft.referral_claims(PARTNER_ID, INSTANCE_ID)
    claims["body"]["attachments"] = [
        {
            "id": "0190f3a2-7c1e-7a3b-9f00-1c2d3e4f5a6b",
            "media_type": "application/pdf",
            "size": 131_072,
            "sha256": hashlib.sha256(big).hexdigest(),
        }
    ]
    token = craft.sign(claims, p.partner_sign_private, kid=p.partner_sign_kid)
    response = client.post(
        "/api/v1/exchange/messages",
        json={
            "message": craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid),
            "attachments": [
                craft.encrypt(big, p.own_enc_public, kid=p.own_enc_kid, cty="passage-attachment")
            ],
        },
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["reason"] == "oversize"
