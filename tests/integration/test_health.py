from __future__ import annotations


def test_liveness_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "migrations": "ok", "keys": "ok"}
    assert "kid" not in ready.text and "key_id" not in ready.text


def test_readiness_fails_when_the_database_is_behind(live) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    owner = create_engine(live.env.owner_url)
    with owner.begin() as conn:  # the app role may not touch alembic_version: the owner does
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    owner.dispose()
    ready = TestClient(live.app, base_url="https://testserver").get("/readyz")
    assert ready.status_code == 503 and ready.json()["migrations"] == "behind"
