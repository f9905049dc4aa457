from __future__ import annotations

from tests.builders import registration


def test_caseworker_registers_and_reads_back(world, api):
    ngo = world.agency("ngo")
    worker = api(world.user("ngo_caseworker", ngo))
    created = worker.post("/api/v1/cases", json=registration())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["stage"] == "detected"
    assert body["victim"]["given_name"] == "Élodie"
    assert body["details"]["labour_sector"] == "hospitality"
    assert body["age_band"] == "adult"
    assert created.headers["ETag"] == '"1"'

    again = worker.get(f"/api/v1/cases/{body['id']}")
    assert again.status_code == 200
    assert again.json()["victim"]["family_name"] == "N'Diaye"
    assert again.headers["cache-control"] == "no-store"
