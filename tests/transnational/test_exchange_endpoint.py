"""The instance-to-instance endpoint answers anything with a clean 4xx (quarantined), never a
server error; a genuine package reaching an instance not configured yet is kept by its
sender (503 + Retry-After, nothing quarantined). Every transnational route documents the
statuses it gives, so schema checkers find none undocumented."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.transnational.models import QuarantinedPackage
from tests.transnational import craft
from tests.transnational.single import INSTANCE_ID, PARTNER_ID, configure

MESSAGES = "/api/v1/exchange/messages"


def _quarantined(session) -> int:
    return int(session.scalar(select(func.count()).select_from(QuarantinedPackage)) or 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed"),
        (b"not json at all", "malformed"),
        (b"[1, 2]", "malformed"),
        (b'{"message": 7}', "malformed"),
        (b'{"message": "x", "extra": 1}', "malformed"),
        (b'{"message": "x", "attachments": "y"}', "malformed"),
        (b'{"message": "a.b.c.d.e"}', "malformed"),
        (b'{"message": "", "attachments": []}', "malformed"),
        (b'{"message": "x", "attachments": ["a", "b", "c", "d"]}', "oversize"),
    ],
)
def test_garbage_is_refused_and_quarantined_even_before_configuration(
    client, session, body, reason
):
    before = _quarantined(session)
    response = client.post(MESSAGES, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] == "package_refused" and error["reason"] == reason
    assert _quarantined(session) == before + 1


def test_a_genuine_package_before_configuration_is_kept_by_its_sender(client, session, ctx):
    from app.transnational.keys import instance_keys

    own = instance_keys(ctx)
    private, public = craft.ec_pair()
    token = craft.sign(
        craft.referral_claims(PARTNER_ID, INSTANCE_ID), private, kid=craft.kid_of(public, "sig")
    )
    before = _quarantined(session)
    response = client.post(
        MESSAGES,
        json={
            "message": craft.encrypt(
                token.encode(), own.encryption_public_pem, kid=own.encryption_kid
            ),
            "attachments": [],
        },
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "exchange_not_configured"
    assert int(response.headers["Retry-After"]) > 0
    assert _quarantined(session) == before  # nothing wrong with it: the sender retries


def test_once_configured_a_package_from_a_stranger_is_refused(world, api, ctx, client, session):
    p = configure(world, api, ctx)
    private, public = craft.ec_pair()
    token = craft.sign(
        craft.referral_claims("urn:passage:zz:stranger", INSTANCE_ID),
        private,
        kid=craft.kid_of(public, "sig"),
    )
    response = client.post(
        MESSAGES,
        json={"message": craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid)},
    )
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "unknown_sender"


def test_inputs_refuse_what_their_schema_refuses(world, api, ctx, session):
    """The referral input takes UUIDs only in the form its schema documents."""
    p = configure(world, api, ctx)
    bare = p.partner_id.replace("-", "")
    for partner_id in (bare, "{" + p.partner_id + "}", "urn:uuid:" + p.partner_id):
        response = p.focal.post(
            f"/api/v1/transnational/cases/{p.partner_id}/referrals",
            json={"partner_id": partner_id, "purpose": "request_for_information"},
        )
        assert response.status_code == 422, (partner_id, response.text)
        assert response.json()["error"]["details"][0]["field"] == "partner_id"


def test_every_transnational_route_documents_its_statuses(app):
    document = app.openapi()
    operations = {
        (method.upper(), path): op
        for path, item in document["paths"].items()
        if path.startswith(("/api/v1/transnational", "/api/v1/exchange"))
        for method, op in item.items()
    }
    assert len(operations) >= 30
    for (method, path), op in operations.items():
        declared = {int(code) for code in op["responses"] if code != "default"}
        if path.startswith("/api/v1/exchange/"):
            continue
        for status in (400, 401, 403, 413, 422, 429):
            assert status in declared, (method, path, status)
        if "{" in path:
            assert 404 in declared, (method, path)
        if any(p.get("name") == "If-Match" for p in op.get("parameters", [])):
            assert 428 in declared, (method, path)
    messages = operations[("POST", MESSAGES)]
    assert {200, 409, 413, 415, 422, 429, 503} <= {int(c) for c in messages["responses"]}
    body = messages["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["message"] and body["additionalProperties"] is False
    attachment = operations[
        ("GET", "/api/v1/transnational/exchanges/{exchange_id}/attachments/{attachment_id}")
    ]
    assert set(attachment["responses"]["200"]["content"]) == {
        "application/pdf",
        "image/jpeg",
        "image/png",
    }


def test_the_dispatch_command_reports_its_figures(fresh_db, keys_dir):
    import json

    import typer
    from typer.testing import CliRunner

    from app.transnational.commands import register
    from tests.conftest import make_settings

    cli = typer.Typer()
    cli.command("noop")(lambda: None)  # a group, as in the real `passage` CLI
    register(cli, lambda: make_settings(fresh_db, keys_dir))
    result = CliRunner().invoke(cli, ["exchange", "dispatch", "--limit", "10"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "delivered": 0,
        "refused": 0,
        "retrying": 0,
        "failed": 0,
        "cancelled": 0,
        "withdrawals": 0,
        "problems": 0,
    }
