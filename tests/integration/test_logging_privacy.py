"""No personal value reaches the logs, whatever happens to the request."""

from __future__ import annotations

import logging

from tests.builders import registration

CANARY_GIVEN = "Logcanaryname"
CANARY_PHONE = "+44 7700 900123"


def test_no_personal_value_in_logs(world, api, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    created = worker.post(
        "/api/v1/cases", json=registration(given_name=CANARY_GIVEN, phone=CANARY_PHONE)
    )
    assert created.status_code == 201
    case_id = created.json()["id"]
    worker.get(f"/api/v1/cases/{case_id}")
    # Failures too: validation errors and a stale update carry the values in the request.
    worker.post("/api/v1/cases", json=registration(given_name=CANARY_GIVEN, nationalities=["QQ"]))
    worker.patch(
        f"/api/v1/cases/{case_id}/victim",
        json={"given_name": CANARY_GIVEN + "x"},
        headers={"If-Match": '"7"'},
    )
    worker.post(
        "/api/v1/auth/login", json={"username": CANARY_GIVEN, "password": "wrong password here"}
    )
    captured = capsys.readouterr()
    everything = caplog.text + captured.out + captured.err
    assert CANARY_GIVEN not in everything
    assert CANARY_PHONE not in everything
    assert "Logcanaryname".lower() not in everything.lower()


def test_unexpected_error_logs_type_not_message(world, api, caplog, monkeypatch) -> None:
    from app.cases import service

    def boom(*args, **kwargs):
        raise ValueError(f"value was {CANARY_GIVEN}")

    monkeypatch.setattr(service, "list_cases", boom)
    caplog.set_level(logging.INFO)
    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    from fastapi.testclient import TestClient

    client = TestClient(
        worker.client.app, base_url="https://testserver", raise_server_exceptions=False
    )
    client.cookies = worker.client.cookies
    response = client.get("/api/v1/cases")
    assert response.status_code == 500
    assert CANARY_GIVEN not in response.text
    assert CANARY_GIVEN not in caplog.text
    assert "ValueError" in caplog.text
