"""The edge of the instance-to-instance endpoint: only the documented media type
(application/json, charset utf-8 at most), at most 800,000 bytes, and every refusal there
quarantined and audited in the request's transaction, by size, hash, claimed media type
and source address only. A flood is counted on a bounded number of rows.

A genuine, validly signed package from a pinned partner is posted each time: refused for
its wrapping alone, it is never imported."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import OutboxMessage
from app.transnational import edge, incoming
from app.transnational.models import Exchange, QuarantinedPackage
from app.transnational.protocol import MAX_BODY_BYTES
from tests.transnational import craft
from tests.transnational.single import INSTANCE_ID, PARTNER_ID, Partnered, configure

MESSAGES = "/api/v1/exchange/messages"
CANARY = "Edgecanary"


def _package(p: Partnered) -> tuple[bytes, uuid.UUID]:
    """A genuine referral from the pinned partner, as the transport document; its thread."""
    claims = craft.referral_claims(PARTNER_ID, INSTANCE_ID, given_name=CANARY)
    token = craft.sign(claims, p.partner_sign_private, kid=p.partner_sign_kid)
    message = craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid)
    document = json.dumps({"message": message, "attachments": []}).encode()
    return document, uuid.UUID(claims["thread"])


def _imported(session, thread: uuid.UUID) -> bool:
    found = session.scalar(select(func.count()).where(Exchange.thread_id == thread))
    return bool(found)


def _row(session, response) -> QuarantinedPackage:
    row = session.get(QuarantinedPackage, uuid.UUID(response.json()["error"]["quarantine_id"]))
    assert row is not None
    session.refresh(row)
    return row


def _audited(session, row: QuarantinedPackage) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_id == row.id)
            .where(AuditEvent.chain_key == incoming.QUARANTINE_CHAIN)
            .order_by(AuditEvent.seq)
        )
    )


def _client(app, address: str) -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(address, 40000))


def _assert_nothing_personal(row: QuarantinedPackage, events: list[AuditEvent]) -> None:
    assert row.body is None
    kept = " ".join(str(v) for v in (row.reason, row.content_type, row.claimed_issuer))
    assert CANARY not in kept
    for event in events:
        assert CANARY not in json.dumps(event.details)


# -- media type --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "claimed"),
    [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        (None, None),
        ("application/jose", "application/jose"),
        ("application/jose+json", "application/jose+json"),
        ("application/problem+json", "application/problem+json"),
        ("application/json; charset=latin-1", "application/json; charset=latin-1"),
        ("application/json; charset=utf-16", "application/json; charset=utf-16"),
        ("application/json; profile=passage", "application/json; profile"),
        (
            "application/json; charset=utf-8; charset=utf-8",
            "application/json; charset=utf-8; charset=utf-8",
        ),
        ("application/json, text/plain", "(unparseable)"),
        ("multipart/form-data; boundary=AminaBoundary", "multipart/form-data; boundary"),
    ],
)
def test_a_signed_package_in_another_media_type_is_refused_quarantined_and_audited(
    world, api, ctx, app, session, content_type, claimed
):
    p = configure(world, api, ctx)
    document, thread = _package(p)
    headers = {"content-type": content_type} if content_type else {}
    with _client(app, "192.0.2.10") as client:
        response = client.post(MESSAGES, content=document, headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "package_refused" and error["reason"] == "unsupported_media_type"
    assert "application/json" in error["message"] or "charset" in error["message"]
    assert CANARY not in response.text
    assert not _imported(session, thread)
    row = _row(session, response)
    assert row.reason_code == "unsupported_media_type"
    assert row.size == len(document)
    assert row.sha256 == hashlib.sha256(document).hexdigest()
    assert row.source_address == "192.0.2.10"
    assert row.partner_id is None and row.repeat_count == 1
    assert row.content_type == claimed
    assert "AminaBoundary" not in (row.content_type or "")  # parameter values are not kept
    [event] = _audited(session, row)
    assert event.action == "transnational_package_quarantined"
    assert event.details["reason_code"] == "unsupported_media_type"
    assert event.details["size"] == len(document)
    _assert_nothing_personal(row, [event])
    alerts = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "alert.transnational_quarantine")
    ).all()
    assert any(a.payload["quarantine_id"] == str(row.id) for a in alerts)


def test_a_multipart_form_with_the_package_is_refused(world, api, ctx, app, session):
    p = configure(world, api, ctx)
    document, thread = _package(p)
    message = json.loads(document)["message"]
    with _client(app, "192.0.2.11") as client:
        response = client.post(MESSAGES, files={"message": (None, message)})
    assert response.status_code == 415, response.text
    assert not _imported(session, thread)
    row = _row(session, response)
    assert row.content_type == "multipart/form-data; boundary"
    assert row.body is None and len(_audited(session, row)) == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; Charset="utf-8"',
    ],
)
def test_the_documented_media_type_still_imports(world, api, ctx, app, session, content_type):
    p = configure(world, api, ctx)
    document, thread = _package(p)
    with _client(app, "192.0.2.12") as client:
        response = client.post(MESSAGES, content=document, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["receipt"]
    assert _imported(session, thread)
    assert not session.scalar(select(func.count()).select_from(QuarantinedPackage))


# -- size --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 1_500_000])
def test_a_declared_length_over_the_limit_is_refused_quarantined_and_audited(
    world, api, ctx, app, session, size
):
    """Also past the application-wide 1 MB limit, which used to refuse it without a trace."""
    p = configure(world, api, ctx)
    document, thread = _package(p)
    padded = document[:-1] + b', "pad": "' + b"p" * size + b'"}'
    body = padded[:size]
    with _client(app, "192.0.2.13") as client:
        response = client.post(MESSAGES, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["reason"] == "oversize"
    assert not _imported(session, thread)
    row = _row(session, response)
    assert row.reason_code == "oversize" and row.size == size
    assert row.sha256 is None and row.body is None  # never read
    assert row.content_type == "application/json" and row.source_address == "192.0.2.13"
    [event] = _audited(session, row)
    assert event.details == {"reason_code": "oversize", "partner_id": None, "size": size}
    _assert_nothing_personal(row, [event])


class _Post:
    """An HTTP POST straight into the ASGI app: chunk by chunk, counting what was read."""

    def __init__(self, app: Any, headers: dict[str, str], chunks: Iterator[bytes]) -> None:
        self.app, self.chunks = app, chunks
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.read = 0
        self.status = 0
        self.body = b""

    async def _run(self) -> None:
        async def receive() -> dict[str, Any]:
            chunk = next(self.chunks, None)
            if chunk is None:
                return {"type": "http.request", "body": b"", "more_body": False}
            self.read += 1
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": MESSAGES,
            "raw_path": MESSAGES.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *self.headers],
            "client": ("198.51.100.7", 40000),
            "server": ("testserver", 443),
            "state": {},
        }
        await self.app(scope, receive, send)

    def run(self) -> _Post:
        # In a loop of its own thread, as TestClient does: this thread may already hold one
        # (Playwright's sync API, from the browser tests earlier in the same worker).
        with anyio.from_thread.start_blocking_portal() as portal:
            portal.call(self._run)
        return self


CHUNK = 64 * 1024


def _endless(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(
    world, api, ctx, app, session, content_type
):
    """No Content-Length (chunked): an endless body is read only up to the limit (plus the
    chunk that passed it), then refused, quarantined and audited. Over the limit, a body is
    oversize whatever its media type."""
    configure(world, api, ctx)
    post = _Post(app, {"content-type": content_type}, _endless(b"x" * CHUNK)).run()
    assert post.status == 413, post.body
    answer = json.loads(post.body)["error"]
    assert answer["reason"] == "oversize"
    assert post.read == MAX_BODY_BYTES // CHUNK + 1  # 13 chunks, then nothing more
    row = session.get(QuarantinedPackage, uuid.UUID(answer["quarantine_id"]))
    assert row is not None and row.reason_code == "oversize"
    assert MAX_BODY_BYTES < row.size <= MAX_BODY_BYTES + CHUNK
    assert row.sha256 is None and row.body is None
    assert row.content_type == content_type and row.source_address == "198.51.100.7"
    assert len(_audited(session, row)) == 1


def test_a_huge_declared_length_is_refused_before_anything_is_read(world, api, ctx, app, session):
    configure(world, api, ctx)
    post = _Post(
        app,
        {"content-type": "application/json", "content-length": str(10**12)},
        _endless(b"x" * CHUNK),
    ).run()
    assert post.status == 413, post.body
    assert post.read == 0
    row = session.get(
        QuarantinedPackage, uuid.UUID(json.loads(post.body)["error"]["quarantine_id"])
    )
    assert row is not None and row.size == 10**12 and len(_audited(session, row)) == 1


def test_a_streamed_body_within_the_limit_still_imports(world, api, ctx, app, session):
    p = configure(world, api, ctx)
    document, thread = _package(p)
    pieces = iter([document[i : i + 1000] for i in range(0, len(document), 1000)])
    post = _Post(app, {"content-type": "application/json"}, pieces).run()
    assert post.status == 200, post.body
    assert _imported(session, thread)


def test_the_operator_limit_applies_when_it_is_lower(world, api, ctx, app, session):
    configure(world, api, ctx)
    app.state.settings = app.state.settings.model_copy(update={"max_body_bytes": 50_000})
    with _client(app, "192.0.2.14") as client:
        response = client.post(
            MESSAGES, content=b"x" * 50_001, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert _row(session, response).size == 50_001


def test_other_routes_keep_the_application_wide_limit(client):
    response = client.post(
        "/api/v1/auth/login",
        content=b"x" * 1_000_001,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


# -- floods ------------------------------------------------------------------------------------
def test_a_flood_from_one_source_is_counted_on_bounded_rows(world, api, ctx, app, session):
    p = configure(world, api, ctx)
    document, thread = _package(p)
    flood = incoming.ROWS_PER_SOURCE + 15
    with _client(app, "192.0.2.20") as client:
        for _ in range(flood):
            response = client.post(
                MESSAGES, content=document, headers={"content-type": "text/plain"}
            )
            assert response.status_code == 415
    with _client(app, "192.0.2.21") as other:
        elsewhere = other.post(MESSAGES, content=document, headers={"content-type": "text/plain"})
    assert elsewhere.status_code == 415
    assert not _imported(session, thread)
    rows = list(
        session.scalars(
            select(QuarantinedPackage)
            .where(QuarantinedPackage.source_address == "192.0.2.20")
            .order_by(QuarantinedPackage.received_at)
        )
    )
    assert len(rows) == incoming.ROWS_PER_SOURCE
    assert sum(r.repeat_count for r in rows) == flood
    counting = rows[-1]
    assert counting.repeat_count == 16 and counting.last_received_at is not None
    assert str(counting.id) == response.json()["error"]["quarantine_id"]
    # Each row audited once when opened; the counting row again at 2, 4, 8 and 16.
    events = _audited(session, counting)
    assert [e.action for e in events] == ["transnational_package_quarantined"] + [
        "transnational_refusals_repeated"
    ] * 4
    assert [e.details.get("repeat_count") for e in events[1:]] == [2, 4, 8, 16]
    total = session.scalar(
        select(func.count()).where(AuditEvent.chain_key == incoming.QUARANTINE_CHAIN)
    )
    assert total == incoming.ROWS_PER_SOURCE + 4 + 1  # + the other source's row
    # Another source still gets a row of its own.
    assert _row(session, elsewhere).source_address == "192.0.2.21"
    # Focal points see the flood in the quarantine list: counts, never content.
    listing = p.focal.get("/api/v1/transnational/quarantine")
    assert listing.status_code == 200, listing.text
    top = listing.json()[0]
    assert top["id"] in (str(counting.id), elsewhere.json()["error"]["quarantine_id"])
    listed = {q["id"]: q for q in listing.json()}
    assert listed[str(counting.id)]["repeat_count"] == 16
    assert listed[str(counting.id)]["content_type"] == "text/plain"
    assert listed[str(counting.id)]["source_address"] == "192.0.2.20"
    assert CANARY not in listing.text


def test_rows_opened_per_window_are_capped_across_sources(
    world, api, ctx, app, session, monkeypatch
):
    monkeypatch.setattr(incoming, "ROWS_PER_WINDOW", 5)
    monkeypatch.setattr(incoming, "ANONYMOUS_ROWS_PER_WINDOW", 3, raising=False)
    configure(world, api, ctx)
    ids = []
    for n in range(6):
        with _client(app, f"192.0.2.{30 + n}") as client:
            response = client.post(MESSAGES, content=b"{}", headers={"content-type": "text/plain"})
        assert response.status_code == 415
        ids.append(response.json()["error"]["quarantine_id"])
    rows = session.scalars(select(QuarantinedPackage)).all()
    assert len(rows) == 3
    assert sum(r.repeat_count for r in rows) == 6
    assert len(set(ids)) == 3 and ids[3:] == [ids[2]] * 3
    # A reason not seen yet in the window still gets its own row.
    with _client(app, "192.0.2.40") as client:
        oversize = client.post(
            MESSAGES, content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "text/plain"}
        )
    assert oversize.status_code == 413
    assert _row(session, oversize).reason_code == "oversize"
    assert session.scalar(select(func.count()).select_from(QuarantinedPackage)) == 4


# -- the media type rules themselves -----------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        (["application/json"], True),
        ([" application/json "], True),
        (["APPLICATION/JSON; CHARSET=UTF-8"], True),
        (['application/json; charset="utf-8"'], True),
        ([], False),
        (["application/json", "application/json"], False),
        (["application/json; charset=utf8"], False),
        (["application/json; charset="], False),
        (["application/json;"], False),
        (["application/json; q=1"], False),
        (["application/jsonx"], False),
        (["application /json"], False),
        (["*/*"], False),
        (["application/*"], False),
    ],
)
def test_media_type_rules(values, accepted):
    assert (edge.media_type_problem(values) is None) is accepted


def test_the_claimed_media_type_keeps_no_parameter_value_but_the_charset():
    assert edge.describe_media_type(["text/plain; Charset=ISO-8859-1; name=secret"]) == (
        "text/plain; charset=iso-8859-1; name"
    )
    assert edge.describe_media_type(["x/" + "y" * 200]).endswith("...")  # type: ignore[union-attr]
    assert len(edge.describe_media_type(["x/" + "y" * 200]) or "") == 100
    assert edge.describe_media_type(["not a media type"]) == "(unparseable)"
    assert edge.describe_media_type(["a/b", "c/d"]) == "(several headers)"
    assert edge.describe_media_type([]) is None


def _referral_with(p: Partnered, attachment: str) -> tuple[bytes, str]:
    """A genuine, validly signed referral from the pinned partner whose one attachment
    (`attachment`, a JWE) is refused after the signature has verified; the message JWE."""
    pdf = b"%PDF-1.4 travel document scan"
    claims = craft.referral_claims(PARTNER_ID, INSTANCE_ID, given_name=CANARY)
    claims["body"]["attachments"] = [
        {
            "id": str(uuid.uuid4()),
            "media_type": "application/pdf",
            "size": len(pdf),
            "sha256": hashlib.sha256(pdf).hexdigest(),
        }
    ]
    token = craft.sign(claims, p.partner_sign_private, kid=p.partner_sign_kid)
    message = craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid)
    document = json.dumps({"message": message, "attachments": [attachment]}).encode()
    return document, message


def test_an_anonymous_flood_does_not_swallow_a_verified_partners_refusal(
    world, api, ctx, app, session, monkeypatch
):
    """Unauthenticated senders fill the window past their share with reasons they can
    trigger, some naming the partner; the partner's own refused packages, refused for the
    same reasons once their signature has verified, still get rows of their own: token
    kept, audited and alerted, never counted on a row the flood opened."""
    monkeypatch.setattr(incoming, "ROWS_PER_WINDOW", 6)
    monkeypatch.setattr(incoming, "ANONYMOUS_ROWS_PER_WINDOW", 4, raising=False)
    p = configure(world, api, ctx)
    json_type = {"content-type": "application/json"}
    # Anyone can encrypt to our published key: to another kid (wrong_recipient_key) ...
    stray = craft.referral_claims(PARTNER_ID, INSTANCE_ID)
    unsigned = craft.encrypt(craft.unsigned(stray).encode(), p.own_enc_public, kid="not-ours")
    anonymous = json.dumps({"message": unsigned, "attachments": []}).encode()
    flood_ids = set()
    for n in range(10):
        with _client(app, f"192.0.2.{50 + n}") as client:
            response = client.post(MESSAGES, content=anonymous, headers=json_type)
        assert response.json()["error"]["reason"] == "wrong_recipient_key", response.text
        flood_ids.add(response.json()["error"]["quarantine_id"])
    # ... or naming the partner as issuer, with a token type the endpoint refuses.
    forged_key, _ = craft.ec_pair()
    forged = craft.sign(stray, forged_key, kid=p.partner_sign_kid, typ="x+jwt")
    naming = craft.encrypt(forged.encode(), p.own_enc_public, kid=p.own_enc_kid)
    naming_document = json.dumps({"message": naming, "attachments": []}).encode()
    for n in range(5):
        with _client(app, f"192.0.2.{70 + n}") as client:
            response = client.post(MESSAGES, content=naming_document, headers=json_type)
        assert response.json()["error"]["reason"] == "wrong_type", response.text
        flood_ids.add(response.json()["error"]["quarantine_id"])
    flood_rows = session.scalars(select(QuarantinedPackage)).all()
    assert len(flood_rows) == 5  # the anonymous share (4), + one for a reason not seen yet
    assert {str(r.id) for r in flood_rows} == flood_ids
    assert sum(r.repeat_count for r in flood_rows) == 15
    assert {str(r.partner_id) for r in flood_rows if r.reason_code == "wrong_type"} == {
        p.partner_id
    }

    def refused(address: str, attachment: str, reason: str) -> tuple[QuarantinedPackage, str]:
        document, message = _referral_with(p, attachment)
        with _client(app, address) as client:
            response = client.post(MESSAGES, content=document, headers=json_type)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["reason"] == reason
        return _row(session, response), message

    pdf = b"%PDF-1.4 travel document scan"
    for attachment, reason in [
        (
            craft.encrypt(pdf, p.own_enc_public, kid="not-ours", cty="passage-attachment"),
            "wrong_recipient_key",
        ),
        (craft.encrypt(pdf, p.own_enc_public, kid=p.own_enc_kid, cty="x"), "wrong_type"),
    ]:
        row, message = refused("192.0.2.90", attachment, reason)
        assert str(row.id) not in flood_ids
        assert row.reason_code == reason and row.repeat_count == 1
        assert str(row.partner_id) == p.partner_id and row.source_address == "192.0.2.90"
        assert row.body == message  # its own token kept, as for any refusal of its kind
        [event] = _audited(session, row)
        assert event.action == "transnational_package_quarantined"
        assert event.details["partner_id"] == p.partner_id
        alerts = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "alert.transnational_quarantine")
        ).all()
        assert [
            a.payload["reason_code"] for a in alerts if a.payload["quarantine_id"] == str(row.id)
        ] == [reason]
    # Past the whole cap (7 rows now), the partner's next refusal from the same address is
    # counted on its own row; from another address it still opens one, never the flood's.
    attachment = craft.encrypt(pdf, p.own_enc_public, kid="not-ours", cty="passage-attachment")
    again, _ = refused("192.0.2.90", attachment, "wrong_recipient_key")
    assert again.repeat_count == 2 and str(again.id) not in flood_ids
    elsewhere, _ = refused("192.0.2.91", attachment, "wrong_recipient_key")
    assert elsewhere.repeat_count == 1 and elsewhere.id != again.id
    assert str(elsewhere.id) not in flood_ids
    # The flood's rows counted nothing of the partner's.
    for flood_row in flood_rows:
        session.refresh(flood_row)
    assert sum(r.repeat_count for r in flood_rows) == 15
