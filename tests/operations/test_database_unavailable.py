"""A database that cannot be reached answers a clean 503, never a 500 or its error text."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from app.db.session import Database
from app.main import create_app


def _unreachable_url(tmp_path: Path) -> str:
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"):
        # Nothing listens on port 1: the connection is refused at once.
        return "postgresql+psycopg://postgres@127.0.0.1:1/passage"
    return f"sqlite:///{tmp_path / 'no-such-directory' / 'passage.db'}"  # cannot be opened


def test_unreachable_database_answers_503_with_retry_after(settings, tmp_path: Path) -> None:
    broken = settings.model_copy(
        update={"database_url": _unreachable_url(tmp_path), "rate_limit_enabled": False}
    )
    database = Database(broken)
    app = create_app(broken, database=database)
    try:
        with TestClient(app, base_url="https://testserver") as client:
            answer = client.post(
                "/api/v1/auth/login",
                json={"username": "secret-name", "password": "correct horse battery"},
                headers={"Origin": "https://testserver"},
            )
            ready = client.get("/readyz")
    finally:
        database.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"].isdigit()
    body = answer.json()["error"]
    assert body["code"] == "service_unavailable"
    # Nothing of the driver's message (host, port, path, values) reaches the client.
    for leaked in ("127.0.0.1", "sqlite", "no-such-directory", "secret-name", "psycopg"):
        assert leaked not in answer.text
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"


def test_other_database_errors_stay_internal_errors() -> None:
    """An integrity error is a bug, not an outage: it must not be disguised as a 503."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    from app.main import is_database_unavailable

    assert not is_database_unavailable(IntegrityError("INSERT", {}, Exception("duplicate")))
    assert not is_database_unavailable(DBAPIError("SELECT", {}, Exception("x")))
    assert is_database_unavailable(OperationalError("SELECT", {}, Exception("gone")))
    lost = DBAPIError("SELECT", {}, Exception("x"), connection_invalidated=True)
    assert is_database_unavailable(lost)
