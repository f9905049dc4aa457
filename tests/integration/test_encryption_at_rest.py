"""Every victim field is unreadable in the database; moved ciphertexts fail to open."""

from __future__ import annotations

import sqlite3
import subprocess
import uuid

from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from app.cases.models import Case
from app.victims.fields import ALL_SEALED_FIELDS
from app.victims.models import Victim
from tests.builders import registration

CANARIES = {
    "given_name": "Zyxwqanary",
    "family_name": "Qoppafamily",
    "phone": "+33 6 99 88 77 66",
    "current_address": "77 avenue Canarylane",
    "accommodation": "Refuge Vexillum",
    "health_notes": "Hepatitiscanary treatment",
    "gender_identity": "canary-gender",
}
CASE_CANARIES = {
    "detection_place": "Boulangerie Canaryville",
    "statement_summary": "Statementcanary recruited in Dakar",
    "exploitation_form_details": "Detailcanary twelve hours a day",
}


def _dump(live) -> str:
    if live.env.dialect == "sqlite":
        conn = sqlite3.connect(make_url(live.env.owner_url).database)
        try:
            # iterdump renders BLOBs as hex; decode raw bytes too so plaintext bytes would show.
            text = "\n".join(conn.iterdump())
            for table in ("victims", "cases", "case_notes", "audit_events"):
                for row in conn.execute(f"SELECT * FROM {table}"):
                    text += "\n" + " ".join(
                        v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row
                    )
            return text
        finally:
            conn.close()
    url = make_url(live.env.owner_url)
    out = subprocess.run(
        [
            "pg_dump",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "--data-only",
            "--inserts",
            url.database or "",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return out.decode("latin-1")


def test_raw_dump_holds_no_canary_value(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    payload = registration(**CANARIES)
    payload["case"].update(CASE_CANARIES)
    created = client.post("/api/v1/cases", json=payload)
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    note = client.post(
        f"/api/v1/cases/{case_id}/notes", json={"body": "Notecanary met at the station"}
    )
    assert note.status_code == 201
    # The values are really there (the API opens them) ...
    assert (
        client.get(f"/api/v1/cases/{case_id}").json()["victim"]["given_name"]
        == CANARIES["given_name"]
    )
    # ... and nowhere in the raw database.
    dump = _dump(live)
    assert b"Qoppafamily".hex() not in dump.replace("\\x", "")
    for value in [*CANARIES.values(), *CASE_CANARIES.values(), "Notecanary"]:
        assert value not in dump, value


def test_every_sealed_column_holds_envelopes_only(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    assert live.api(user).post("/api/v1/cases", json=registration(**CANARIES)).status_code == 201
    with live.session() as s:
        victim = s.scalars(select(Victim)).one()
        case = s.scalars(select(Case)).one()
        for field in ALL_SEALED_FIELDS:
            row = {"victims": victim, "cases": case}.get(field.table)
            if row is None:
                continue
            value = getattr(row, field.name)
            assert value is None or (isinstance(value, bytes) and value[0] == 1), field.name


def test_value_copied_between_rows_fails_with_a_clear_integrity_error(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    first = client.post("/api/v1/cases", json=registration(given_name="Aminata")).json()
    second = client.post(
        "/api/v1/cases", json=registration(given_name="Mariama", family_name="Sow")
    ).json()
    with live.session() as s, s.begin():
        stolen = s.scalar(
            select(Victim.given_name).where(Victim.id == uuid.UUID(first["victim_id"]))
        )
        s.execute(
            update(Victim)
            .where(Victim.id == uuid.UUID(second["victim_id"]))
            .values(given_name=stolen)
        )
    response = client.get(f"/api/v1/cases/{second['id']}")
    assert response.status_code == 500
    body = response.json()["error"]
    assert body["code"] == "integrity_error"
    assert "Aminata" not in response.text and "Mariama" not in response.text
    # The other record is untouched.
    assert client.get(f"/api/v1/cases/{first['id']}").json()["victim"]["given_name"] == "Aminata"
