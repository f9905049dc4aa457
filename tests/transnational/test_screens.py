"""The focal point's screens: outbox and inbox with statuses and what is due, the consent
check and the preview of exactly which fields leave the country, and sending from it.

One instance in-process (TestClient, real database and crypto); the test plays the
partner instance with its own key pair where a package must arrive."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select

from app.transnational.models import Exchange, ExchangeMessage
from tests.transnational import craft
from tests.transnational.single import INSTANCE_ID, PARTNER_ID, configure, shared_case

CANARY = "Canary-health-9917"


def _fields_on_page(html: str) -> list[str]:
    return re.findall(r'data-field="([a-z_]+)"', html)


def _exchanges(session) -> int:
    return int(session.scalar(select(func.count()).select_from(Exchange)) or 0)


def test_preview_shows_exactly_what_leaves_and_sending_queues_it(world, api, ctx, session):
    p = configure(world, api, ctx)
    case_id, reference = shared_case(
        session,
        world,
        ctx,
        p.office,
        consents=[
            {
                "purpose": "data_sharing_transnational",
                "recipient_agency_id": p.partner_agency_id,
                "scope": ["identity", "documents", "location", "statements"],
            }
        ],
        health_notes=CANARY,
    )
    focal = p.focal

    home = focal.get("/transnational")
    assert home.status_code == 200, home.text
    assert 'href="/transnational" aria-current="page"' in home.text  # the nav entry
    assert "Outbox" in home.text and "Inbox" in home.text

    # The case is found by its reference (only cases shared with the focal point).
    found = focal.get(
        "/transnational/send", params={"reference": reference}, follow_redirects=False
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/transnational/cases/{case_id}/send"
    unknown = focal.get("/transnational/send", params={"reference": "PSG-NONE-0000"})
    assert unknown.status_code == 404 and "No case with this reference" in unknown.text

    url = f"/transnational/cases/{case_id}/send"
    choice = {"partner_id": p.partner_id, "purpose": "return_preparation"}
    page = focal.get(url, params=choice)
    assert page.status_code == 200, page.text
    api_preview = focal.get(
        f"/api/v1/transnational/cases/{case_id}/package-preview", params=choice
    ).json()
    assert api_preview["consent_ok"] is True
    # Exactly the fields the package will hold, by name; values are never shown.
    assert _fields_on_page(page.text) == api_preview["fields"]
    assert "given_name" in api_preview["fields"] and "health_notes" not in api_preview["fields"]
    assert 'data-consent="ok"' in page.text
    assert 'data-excluded="location"' in page.text and 'data-excluded="health"' in page.text
    assert "Never leaves the country" in page.text
    assert CANARY not in page.text and "lodie" not in page.text
    # htmx asks for the preview block only.
    fragment = focal.get(url, params=choice, headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section id="preview"')

    # Sending needs the explicit check of the fields, and the CSRF token.
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), **choice}
    api_csrf = focal.client.headers.pop("X-CSRF-Token")  # a browser form: the token field only
    unconfirmed = focal.post(url, data=form)
    assert unconfirmed.status_code == 422
    assert "Confirm that you checked" in unconfirmed.text
    forged = focal.post(url, data={**choice, "confirm": "on"}, follow_redirects=False)
    assert forged.status_code == 403
    assert _exchanges(session) == 0

    sent = focal.post(url, data={**form, "confirm": "on"}, follow_redirects=False)
    focal.client.headers["X-CSRF-Token"] = api_csrf
    assert sent.status_code == 303, sent.text
    thread_url = sent.headers["location"]
    assert re.fullmatch(r"/transnational/exchanges/[0-9a-f-]{36}\?sent=1", thread_url)
    exchange_id = uuid.UUID(thread_url.split("/")[-1].split("?")[0])
    stored = session.get(Exchange, exchange_id)
    assert stored is not None and stored.status == "queued"
    assert stored.fields == api_preview["fields"]  # what was previewed is what was packed
    [message] = session.scalars(
        select(ExchangeMessage).where(ExchangeMessage.exchange_id == exchange_id)
    ).all()
    assert message.token is not None and CANARY not in message.token

    thread = focal.get(thread_url)
    assert thread.status_code == 200
    assert 'data-status="queued"' in thread.text
    assert "Acknowledgement by the partner" in thread.text
    assert 'data-message="referral"' in thread.text
    outbox = focal.get("/transnational")
    assert f'data-exchange="{exchange_id}"' in outbox.text
    assert "Waiting to be delivered" in outbox.text
    assert "Acknowledgement by the partner" in outbox.text
    filtered = focal.get("/transnational", params={"status": "delivered"})
    assert f'data-exchange="{exchange_id}"' not in filtered.text


def test_the_consent_check_blocks_sending(world, api, ctx, session):
    p = configure(world, api, ctx)
    other = world.agency("ngo")
    # Consent names another recipient, not the partner: nothing may go.
    case_id, _ = shared_case(
        session,
        world,
        ctx,
        p.office,
        consents=[
            {
                "purpose": "data_sharing_transnational",
                "recipient_agency_id": str(other.id),
                "scope": ["identity"],
            }
        ],
    )
    url = f"/transnational/cases/{case_id}/send"
    choice = {"partner_id": p.partner_id, "purpose": "request_for_information"}
    page = p.focal.get(url, params=choice)
    assert page.status_code == 200
    assert 'data-consent="refused"' in page.text
    assert "No valid consent names this partner for this purpose." in page.text
    assert _fields_on_page(page.text) == []
    assert "Sign, encrypt and send" not in page.text
    # A forged submission is refused by the service itself.
    forced = p.focal.post(url, data={**choice, "confirm": "on"})
    assert forced.status_code == 409
    assert "nothing may be sent" in forced.text
    assert _exchanges(session) == 0


def test_the_inbox_shows_a_received_package_and_the_decision_due(world, api, ctx, client, session):
    p = configure(world, api, ctx)
    claims = craft.referral_claims(PARTNER_ID, INSTANCE_ID, given_name=CANARY)
    token = craft.sign(claims, p.partner_sign_private, kid=p.partner_sign_kid)
    delivered = client.post(
        "/api/v1/exchange/messages",
        json={
            "message": craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid),
            "attachments": [],
        },
    )
    assert delivered.status_code == 200, delivered.text
    inbox = p.focal.get("/transnational")
    assert "Inbox: received from partners (1)" in inbox.text
    assert "Received, decision needed" in inbox.text
    assert "Our decision (accept or reject)" in inbox.text
    assert "Cellule nationale de lutte contre la traite" in inbox.text
    assert CANARY not in inbox.text  # the package content is read only through the API


def test_the_screens_exist_only_for_focal_points(world, api, ctx, session):
    p = configure(world, api, ctx)
    ngo_worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    for user in (p.admin, ngo_worker):
        assert user.get("/transnational").status_code == 404
        assert user.get("/transnational/send", params={"reference": "X"}).status_code == 404
        assert 'href="/transnational"' not in user.get("/").text
    # Another agency's focal point cannot open a thread it does not handle.
    case_id, _ = shared_case(
        session,
        world,
        ctx,
        p.office,
        consents=[
            {
                "purpose": "data_sharing_transnational",
                "recipient_agency_id": p.partner_agency_id,
                "scope": ["identity"],
            }
        ],
    )
    sent = p.focal.post(
        f"/api/v1/transnational/cases/{case_id}/referrals",
        json={"partner_id": p.partner_id, "purpose": "request_for_information"},
    )
    assert sent.status_code == 202, sent.text
    outsider = api(world.user("focal_point", world.agency("coordinator_office")))
    thread = outsider.get(f"/transnational/exchanges/{sent.json()['exchange_id']}")
    assert thread.status_code == 404
    assert outsider.get(f"/transnational/cases/{case_id}/send").status_code == 404
