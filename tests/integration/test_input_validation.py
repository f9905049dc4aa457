"""Bad input: a 422 with a readable message that never echoes the values sent."""

from __future__ import annotations

import pytest

from tests.builders import registration


@pytest.fixture
def worker(world, api):
    return api(world.user("ngo_caseworker", world.agency("ngo")))


def _with(victim=None, case=None, detection=None, **top):
    body = registration()
    body["victim"].update(victim or {})
    body["case"].update(case or {})
    body["detection"].update(detection or {})
    body.update(top)
    return body


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (_with(victim={"estimated_age": "seventeen"}), "victim.estimated_age", "integer"),
        (_with(victim={"given_name": "A" * 101}), "victim.given_name", "at most 100"),
        (_with(victim={"favourite_colour": "blue"}), "victim.favourite_colour", "unknown field"),
        (_with(victim={"date_of_birth": "1996-02-30"}), "victim.date_of_birth", "date"),
        (_with(victim={"date_of_birth": "2999-01-01"}), "victim.date_of_birth", "future"),
        (_with(victim={"nationalities": ["UK"]}), "victim.nationalities.0", "GB"),
        (_with(victim={"nationalities": ["QQ"]}), "victim.nationalities.0", "ISO 3166-1"),
        (_with(victim={"languages": ["xx1"]}), "victim.languages.0", "language"),
        (
            _with(case={"exploitation_forms": ["piracy"]}),
            "case.exploitation_forms.0",
            "Input should be",
        ),
        (
            _with(case={"exploitation_start": "2026-05-01", "exploitation_end": "2026-01-01"}),
            "case",
            "exploitation_end",
        ),
        (_with(detection={"detected_on": "yesterday"}), "detection.detected_on", "date"),
        (_with(stage="identified"), "stage", "unknown field"),
    ],
)
def test_bad_registration_gives_readable_422(worker, payload, field, words) -> None:
    response = worker.post("/api/v1/cases", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    fields = {d["field"]: d["message"] for d in error["details"]}
    assert field in fields, fields
    assert words.lower() in fields[field].lower()
    assert "Élodie" not in response.text  # values are never echoed back


def test_oversized_body_is_refused_with_413(worker) -> None:
    response = worker.post(
        "/api/v1/cases",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_list_limit_is_bounded(worker) -> None:
    assert worker.get("/api/v1/cases?limit=100").status_code == 200
    too_many = worker.get("/api/v1/cases?limit=100000")
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["error"]["message"]


def test_patch_refuses_protected_and_unknown_keys_and_leaves_row_unchanged(worker) -> None:
    created = worker.post("/api/v1/cases", json=registration()).json()
    for key, value in [
        ("stage", "identified"),
        ("owning_agency_id", created["owning_agency_id"]),
        ("version", 9),
        ("nonsense", 1),
    ]:
        response = worker.patch(
            f"/api/v1/cases/{created['id']}", json={key: value}, headers={"If-Match": '"1"'}
        )
        assert response.status_code == 422, key
    after = worker.get(f"/api/v1/cases/{created['id']}").json()
    assert (after["stage"], after["version"]) == ("detected", 1)


def test_patch_needs_the_version_seen_and_refuses_a_stale_one(worker) -> None:
    created = worker.post("/api/v1/cases", json=registration()).json()
    url = f"/api/v1/cases/{created['id']}"
    assert worker.patch(url, json={"detection_place": "Gare du Nord"}).status_code == 428
    ok = worker.patch(url, json={"detection_place": "Gare du Nord"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = worker.patch(url, json={"detection_place": "Gare de Lyon"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert (
        "version 1" in stale.json()["error"]["message"]
        and "version 2" in stale.json()["error"]["message"]
    )
    assert worker.get(url).json()["details"]["detection_place"] == "Gare du Nord"


def test_unknown_case_and_malformed_id(worker) -> None:
    assert worker.get("/api/v1/cases/7b0e7a3c-2b9a-4c86-b4a5-6f1a0c0d1e2f").status_code == 404
    assert worker.get("/api/v1/cases/not-a-uuid").status_code == 422


def test_a_nul_character_is_refused_cleanly_everywhere(client, worker) -> None:
    # PostgreSQL refuses NUL in text; the answer must be a clear 4xx, never a 500, on both engines.
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "some\x00one", "password": "a long enough password"},
        headers={"Origin": "https://testserver"},
    )
    assert login.status_code in {401, 422}, login.text
    assert "\x00" not in login.text and "some" not in login.text
    listing = worker.get("/api/v1/cases", params={"stage": "detected\x00"})
    assert listing.status_code == 422
