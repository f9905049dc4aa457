"""Key rotation re-wraps data keys only; erasure crypto-shreds; duplicates found blind."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.audit.service import verify_chains
from app.crypto.models import BlindIndexEntry, DataKey
from app.victims.models import Victim
from tests.builders import registration


def _sealed_snapshot(live) -> dict[uuid.UUID, bytes | None]:
    with live.session() as s:
        return {v.id: v.family_name for v in s.scalars(select(Victim))}


def test_rotation_rewraps_every_data_key_and_leaves_fields_untouched(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    ids = [
        client.post("/api/v1/cases", json=registration(family_name=f"Family{i}")).json()["id"]
        for i in range(5)
    ]
    old_kid = live.ctx.keys.keyring.active_kid
    before = _sealed_snapshot(live)

    new_kid = live.ctx.keys.keyring.add_key()
    with live.session() as s, s.begin():
        assert live.ctx.keys.rewrap(s, batch_size=2) == 2  # batches
    with live.session() as s, s.begin():
        while live.ctx.keys.rewrap(s, batch_size=2):
            pass

    with live.session() as s:
        kids = {
            k: n
            for k, n in s.execute(select(DataKey.kek_kid, func.count()).group_by(DataKey.kek_kid))
        }
    assert kids == {new_kid: 5}
    assert old_kid not in kids
    assert _sealed_snapshot(live) == before  # field ciphertexts were not rewritten
    # A fresh key service (new process) still opens everything, then the old key can go.
    live.ctx.keys.keyring.retire(old_kid)
    fresh = live.api(user)
    for i, case_id in enumerate(ids):
        assert fresh.get(f"/api/v1/cases/{case_id}").json()["victim"]["family_name"] == f"Family{i}"


def test_erasure_shreds_fields_and_blind_indexes_but_keeps_the_audit_trail(live) -> None:
    worker, _ngo = live.user("ngo_caseworker", "ngo")
    admin, _ = live.user("admin", "coordinator_office")
    client = live.api(worker)
    created = client.post("/api/v1/cases", json=registration()).json()
    victim_id = uuid.UUID(created["victim_id"])
    with live.session() as s:
        assert s.scalar(select(func.count()).where(BlindIndexEntry.victim_id == victim_id)) > 0

    admin_client = live.api(admin)  # admins pass TOTP first
    body = {"legal_basis": "GDPR Art. 17", "reason_code": "subject_request"}
    erased = admin_client.post(f"/api/v1/victims/{victim_id}/erasure", json=body)
    assert erased.status_code == 200, erased.text
    assert admin_client.post(f"/api/v1/victims/{victim_id}/erasure", json=body).status_code == 409

    with live.session() as s:
        assert s.scalar(select(func.count()).where(BlindIndexEntry.victim_id == victim_id)) == 0
        assert s.scalar(select(func.count()).where(DataKey.victim_id == victim_id)) == 0
        victim = s.get(Victim, victim_id)
        assert (
            victim is not None and victim.family_name is not None
        )  # ciphertext remains, unreadable
        report = verify_chains(s)
        assert report.ok and report.events > 0
        from app.audit.models import AuditEvent

        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.victim_id == victim_id)))
        assert {"case_registered", "victim_erased"} <= actions

    response = client.get(f"/api/v1/cases/{created['id']}")
    # The case stays visible to its agency as a pseudonymised shell; no personal field is returned.
    assert response.status_code == 200
    assert response.json()["victim"] == {} and response.json()["details"] == {}
    from app.crypto.errors import DataKeyShreddedError

    with live.session() as s:
        try:
            live.ctx.keys.codec_for(s, victim_id)
            raise AssertionError("the data key should be gone")
        except DataKeyShreddedError:
            pass


def test_duplicate_found_across_agencies_despite_spelling_variants(live) -> None:
    first, ngo_a = live.user("ngo_caseworker", "ngo")
    second, _ngo_b = live.user("ngo_caseworker", "ngo")
    a = (
        live.api(first)
        .post("/api/v1/cases", json=registration(given_name="Élodie", family_name="N'Diaye"))
        .json()
    )
    b_client = live.api(second)
    b = b_client.post(
        "/api/v1/cases", json=registration(given_name="ELODIE", family_name="NDIAYE")
    ).json()
    unrelated = b_client.post(
        "/api/v1/cases",
        json=registration(given_name="Awa", family_name="Ndiaye", date_of_birth="1990-01-01"),
    ).json()

    matches = b_client.get(f"/api/v1/cases/{b['id']}/duplicates")
    assert matches.status_code == 200
    body = matches.json()
    assert [m["agency_name"] for m in body] == [ngo_a.name]
    assert set(body[0]["matched_on"]) == {"family_name_dob", "full_name_dob"}
    # Only that a match exists and whom to contact: no case id, no name.
    assert a["id"] not in matches.text and "lodie" not in matches.text.lower()
    assert b_client.get(f"/api/v1/cases/{unrelated['id']}/duplicates").json() == []
