"""Trafficking or smuggling: a case carries a classification with its reclassification
history, and the classification never takes assistance away from a smuggled person."""

from __future__ import annotations

from tests.builders import registration


def _register(worker) -> str:
    created = worker.post("/api/v1/cases", json=registration())
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _version(user, case_id: str) -> int:
    return int(user.get(f"/api/v1/cases/{case_id}/transitions").json()["version"])


def test_reclassification_keeps_its_history(world, api):
    ngo = world.agency("ngo")
    worker = api(world.user("ngo_caseworker", ngo))
    case_id = _register(worker)
    url = f"/api/v1/transnational/cases/{case_id}/classification"

    start = worker.get(url)
    assert start.status_code == 200, start.text
    assert start.json()["classification"] == "undetermined" and start.json()["history"] == []

    change = {"classification": "smuggling", "reason_code": "no_exploitation_purpose_found"}
    assert worker.post(url, json=change).status_code == 428  # If-Match is required
    stale = worker.post(url, json=change, headers={"If-Match": '"999"'})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_version"
    bad = worker.post(
        url,
        json={"classification": "other", "reason_code": "new_evidence"},
        headers={"If-Match": '"1"'},
    )
    assert bad.status_code == 422

    first = worker.post(url, json=change, headers={"If-Match": f'"{_version(worker, case_id)}"'})
    assert first.status_code == 200, first.text
    assert first.json()["classification"] == "smuggling"
    same = worker.post(url, json=change, headers={"If-Match": f'"{_version(worker, case_id)}"'})
    assert same.status_code == 409 and same.json()["error"]["code"] == "unchanged"
    second = worker.post(
        url,
        json={"classification": "both", "reason_code": "exploitation_indicators_found"},
        headers={"If-Match": f'"{_version(worker, case_id)}"'},
    )
    assert second.status_code == 200, second.text

    history = worker.get(url).json()["history"]
    assert [(h["from"], h["to"], h["reason_code"]) for h in history] == [
        ("undetermined", "smuggling", "no_exploitation_purpose_found"),
        ("smuggling", "both", "exploitation_indicators_found"),
    ]
    assert all(h["actor_role"] == "ngo_caseworker" for h in history)
    timeline = worker.get(f"/api/v1/cases/{case_id}/timeline").json()
    assert [e["action"] for e in timeline].count("classification_changed") == 2

    # Out of scope is a 404 for everyone; a role that may not classify is refused.
    stranger = api(world.user("ngo_caseworker", world.agency("ngo")))
    assert stranger.get(url).status_code == 404
    admin = api(world.user("admin", world.agency("coordinator_office")))
    assert admin.post(url, json=change, headers={"If-Match": '"1"'}).status_code in (403, 404)


def test_a_smuggled_person_keeps_every_service(world, api):
    ngo = world.agency("ngo")
    worker = api(world.user("ngo_caseworker", ngo))
    smuggled, undetermined = _register(worker), _register(worker)
    reclassified = worker.post(
        f"/api/v1/transnational/cases/{smuggled}/classification",
        json={"classification": "smuggling", "reason_code": "initial_assessment"},
        headers={"If-Match": f'"{_version(worker, smuggled)}"'},
    )
    assert reclassified.status_code == 200, reclassified.text

    def events(case_id: str) -> list[str]:
        return sorted(worker.get(f"/api/v1/cases/{case_id}/transitions").json()["available_events"])

    # Same steps open to both: the classification is no guard of the workflow.
    assert events(smuggled) == events(undetermined) and events(smuggled)
    for case_id in (smuggled, undetermined):
        screened = worker.post(
            f"/api/v1/cases/{case_id}/transitions",
            json={"event": "record_screening"},
            headers={"If-Match": f'"{_version(worker, case_id)}"'},
        )
        assert screened.status_code == 200, screened.text
    assert events(smuggled) == events(undetermined)
    assert (
        worker.get(f"/api/v1/cases/{smuggled}").json()["stage"]
        == (worker.get(f"/api/v1/cases/{undetermined}").json()["stage"])
    )
