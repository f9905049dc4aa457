"""Rotation and retirement cover exchange keys: a received or sent package stays readable
after `keys rotate` + `keys retire` (before, exchange keys stayed under the old KEK and
retiring it destroyed the package and its signed evidence)."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

from sqlalchemy import select

from app.crypto.keyring import FileKeyRing
from app.crypto.service import KeyService
from app.transnational.keys import exchange_codec
from app.transnational.models import Attachment, ExchangeMessage
from tests.conftest import copy_keys
from tests.transnational.single import configure, shared_case

PDF = b"%PDF-1.4\n" + b"Travel document scan " * 50


def test_rotation_rewraps_exchange_keys_and_retirement_keeps_packages_readable(
    world, api, ctx, session, tmp_path: Path
) -> None:
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
    sent = p.focal.post(
        f"/api/v1/transnational/cases/{case_id}/referrals",
        json={
            "partner_id": p.partner_id,
            "purpose": "request_for_information",
            "attachments": [
                {"media_type": "application/pdf", "content_base64": base64.b64encode(PDF).decode()}
            ],
        },
    )
    assert sent.status_code == 202, sent.text
    message = session.scalars(
        select(ExchangeMessage).where(ExchangeMessage.jti == sent.json()["jti"])
    ).one()
    stored = session.scalars(select(Attachment).where(Attachment.message_jti == message.jti)).one()

    # The rotation runs on a copy of the key directory: the shared test keys stay as they are.
    keys_dir = copy_keys(ctx.settings.keys_dir, tmp_path / "keys")
    keys = KeyService(FileKeyRing(keys_dir))
    old = keys.keyring.active_kid
    assert keys.keys_in_use_by_kind(session)["exchange_keys"].get(old, 0) >= 1

    new = keys.keyring.add_key()
    report = keys.rewrap_batch(session)
    assert report.rewrapped.get("exchange_keys", 0) >= 1
    assert report.rewrapped.get("victim_data_keys", 0) >= 1
    assert not report.unreadable
    assert old not in keys.keys_in_use(session)  # every kind moved
    assert set(keys.keys_in_use_by_kind(session)["exchange_keys"]) == {new}
    keys.keyring.retire(old)

    # A process started after the retirement (new ring, empty caches) opens the package.
    fresh = dataclasses.replace(ctx, keys=KeyService(FileKeyRing(keys_dir)))
    session.info.clear()
    codec = exchange_codec(session, fresh, message.exchange_id)
    opened = codec.open("transnational_attachments", "content", stored.id, stored.content)
    assert base64.b64decode(opened) == PDF
