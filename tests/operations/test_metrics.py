"""/metrics: route templates (never raw paths), workflow, audit, decryption, pool; workers add up."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import registration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_never_by_raw_path(world, api, client) -> None:
    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    case_id = worker.post("/api/v1/cases", json=registration()).json()["id"]
    before = client.get("/metrics").text
    for _ in range(3):
        assert worker.get(f"/api/v1/cases/{case_id}").status_code == 200
    missing = uuid.uuid4()
    assert worker.get(f"/api/v1/cases/{missing}").status_code == 404
    assert worker.get(f"/no/such/{missing}").status_code == 404
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    route = "/api/v1/cases/{case_id}"
    key = {"method": "GET", "route": route}
    grown = _value(text, "passage_http_requests_total", **key, status_class="2xx") - _value(
        before, "passage_http_requests_total", **key, status_class="2xx"
    )
    assert grown == 3
    assert _value(text, "passage_http_requests_total", **key, status_class="4xx") >= 1
    assert _value(text, "passage_http_request_duration_seconds_count", **key) >= 4
    assert (
        _value(
            text,
            "passage_http_requests_total",
            method="GET",
            route="<unmatched>",
            status_class="4xx",
        )
        >= 1
    )
    # No id, no raw path, no personal value anywhere in the exposition.
    for secret in (case_id, str(missing), "/no/such", "Élodie", "N'Diaye", "Lilas"):
        assert secret not in text


def test_transitions_audit_appends_and_decrypts_are_counted(world, api, client) -> None:
    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    case_id = worker.post("/api/v1/cases", json=registration()).json()["id"]
    before = client.get("/metrics").text
    worker.get(f"/api/v1/cases/{case_id}")
    moved = worker.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={"event": "report_lost_contact"},
        headers={"If-Match": '"1"'},
    )
    assert moved.status_code == 200, moved.text
    refused = worker.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={"event": "record_screening"},
        headers={"If-Match": '"2"'},
    )
    assert refused.status_code == 409, refused.text
    text = client.get("/metrics").text

    def grew(name: str, **labels: str) -> float:
        return _value(text, name, **labels) - _value(before, name, **labels)

    assert (
        grew("passage_workflow_transitions_total", event="report_lost_contact", outcome="applied")
        == 1
    )
    assert grew("passage_audit_events_total", action="transition") == 1
    refused_count = grew(
        "passage_workflow_transitions_total", event="record_screening", outcome="refused"
    )
    assert refused_count == 1
    assert grew("passage_audit_events_total", action="fields_read") >= 1
    assert grew("passage_field_decrypts_total", table="victims", outcome="ok") >= 1
    assert grew("passage_field_decrypts_total", table="cases", outcome="ok") >= 1
    labels = {
        k for (name, ls), _ in _samples(text).items() if name.startswith("passage_") for k, _ in ls
    }
    assert labels <= {
        "method",
        "route",
        "status_class",
        "event",
        "outcome",
        "action",
        "table",
        "state",
        "kind",
        "limit",
        "le",
    }


def test_rolled_back_audit_events_are_not_counted(world, api, client, monkeypatch) -> None:
    from app.cases import service

    worker = api(world.user("ngo_caseworker", world.agency("ngo")))
    before = _value(
        client.get("/metrics").text, "passage_audit_events_total", action="case_registered"
    )

    def broken(*args, **kwargs):
        raise RuntimeError("after the audit event was flushed")

    monkeypatch.setattr(service, "read_case", broken)
    from fastapi.testclient import TestClient

    quiet = TestClient(
        worker.client.app,
        base_url="https://testserver",
        raise_server_exceptions=False,
        cookies=dict(worker.client.cookies),
        headers=dict(worker.client.headers),
    )
    assert quiet.post("/api/v1/cases", json=registration()).status_code == 500
    after = _value(
        client.get("/metrics").text, "passage_audit_events_total", action="case_registered"
    )
    assert after == before


@pytest.mark.postgres_only
def test_pool_gauges_and_label_hygiene(live) -> None:
    from fastapi.testclient import TestClient

    text = TestClient(live.app, base_url="https://testserver").get("/metrics").text
    assert _value(text, "passage_db_pool_connections", state="size") >= 10
    assert re.search(r'passage_db_pool_connections\{state="checked_out"\}', text)


def test_workers_add_up_in_multiprocess_mode(tmp_path, template) -> None:
    """Two real uvicorn workers, one PROMETHEUS_MULTIPROC_DIR: counts are the sum."""
    if template.dialect != "postgresql":
        pytest.skip("needs PostgreSQL (run make test-pg)")
    from app.operations import liveserver

    env = template.clone("metrics")
    try:
        keys = liveserver.make_keys(tmp_path / "keys")
        prom = tmp_path / "prom"
        with liveserver.running_server(
            env.app_url,
            keys,
            workers=2,
            log_dir=tmp_path,
            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom)},
        ) as server:
            n = 60
            pids = set()
            for _ in range(n):
                # New connection each time so both workers get some of the requests.
                with httpx.Client(base_url=server.base_url, timeout=10) as c:
                    assert c.get("/api/v1/cases").status_code == 401
            for _ in range(10):
                with httpx.Client(base_url=server.base_url, timeout=10) as c:
                    text = c.get("/metrics").text
                    pids.add(
                        _value(
                            text,
                            "passage_http_requests_total",
                            method="GET",
                            route="/api/v1/cases",
                            status_class="4xx",
                        )
                    )
            assert pids == {float(n)}, pids  # whichever worker answers, it reports the sum
            files = {p.name.rsplit("_", 1)[-1] for p in prom.glob("counter_*.db")}
            assert len(files) == 2, files  # both workers wrote their own values
    finally:
        template.drop(env)
