"""Migrations: upgrade an empty database to head, downgrade to base, upgrade again."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.db.models import Base
from tests.conftest import APP_ROLE, REPO, _create_pg_database, _drop_pg_database


@pytest.fixture
def empty_db(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL", "sqlite")
    if url.startswith("postgresql"):
        name = f"passage_mig_{uuid.uuid4().hex[:8]}"
        _create_pg_database(url, name)
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
        _drop_pg_database(url, name)
    else:
        yield f"sqlite:///{tmp_path / 'mig.db'}"


def _config(url: str) -> Config:
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["app_role"] = APP_ROLE if url.startswith("postgresql") else None
    return config


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db: str) -> None:
    config = _config(empty_db)
    command.upgrade(config, "head")
    assert _tables(empty_db) == set(Base.metadata.tables)
    command.downgrade(config, "base")
    assert _tables(empty_db) == set()
    command.upgrade(config, "head")
    assert _tables(empty_db) == set(Base.metadata.tables)


def test_models_match_migrations(empty_db: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    command.upgrade(_config(empty_db), "head")
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], diff


@pytest.mark.postgres_only
def test_audit_triggers_exist_after_upgrade(empty_db: str) -> None:
    command.upgrade(_config(empty_db), "head")
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        triggers = set(
            conn.execute(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass")
            ).scalars()
        )
    engine.dispose()
    assert {"audit_events_no_update_delete", "audit_events_no_truncate"} <= triggers
