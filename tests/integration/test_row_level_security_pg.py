"""PostgreSQL row-level security: the backstop holds even when application code forgets."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.auth.service import actor_for
from app.cases import service as cases
from app.cases.models import Case
from app.cases.schemas import RegistrationIn
from app.db import rls
from app.victims.models import Victim
from tests.builders import registration
from tests.conftest import World

pytestmark = pytest.mark.postgres_only


def _two_agencies_with_cases(live):
    with live.session() as s, s.begin():
        world = World(s, live.password_hash)
        a, b = world.agency("ngo"), world.agency("ngo")
        actor_a = actor_for(world.user("ngo_caseworker", a), a)
        actor_b = actor_for(world.user("ngo_caseworker", b), b)
        for actor in (actor_a, actor_a, actor_b):
            cases.register(s, live.ctx, actor, RegistrationIn.model_validate(registration()))
    return actor_a, actor_b


def test_no_context_sees_nothing(live) -> None:
    _two_agencies_with_cases(live)
    with live.database.sessionmaker() as s:  # the app role, nobody stated
        assert s.scalar(select(func.count()).select_from(Case)) == 0
        assert s.scalar(select(func.count()).select_from(Victim)) == 0


def test_an_unfiltered_query_only_returns_the_agencys_rows(live) -> None:
    actor_a, actor_b = _two_agencies_with_cases(live)
    with live.database.sessionmaker() as s, s.begin():
        rls.apply_actor(s, actor_b, live.ctx.policy)
        # Deliberately no WHERE clause: as if application scoping had a bug.
        rows = s.scalars(select(Case)).all()
        assert [c.owning_agency_id for c in rows] == [actor_b.agency_id]
        assert s.scalar(select(func.count()).select_from(Victim)) == 1
        # Writing a case for another agency is refused by the policy too.
        with pytest.raises(Exception, match="row-level security"), s.begin_nested():
            cases.register(s, live.ctx, actor_a, RegistrationIn.model_validate(registration()))


def test_app_role_owns_nothing_and_tables_force_rls(live) -> None:
    with live.database.engine.connect() as conn:
        me = conn.execute(text("SELECT current_user")).scalar()
        owners = set(
            conn.execute(
                text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        assert me not in owners
        bypass = conn.execute(
            text("SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
        assert bypass is False
        forced = {
            name: flag
            for name, flag in conn.execute(
                text(
                    "SELECT relname, relforcerowsecurity AND relrowsecurity FROM pg_class WHERE relname IN ('cases', 'victims')"
                )
            )
        }
        assert forced == {"cases": True, "victims": True}


def test_coordinator_national_scope_sees_all_cases_but_the_api_returns_no_identity(live) -> None:
    _two_agencies_with_cases(live)
    coordinator, _ = live.user("coordinator", "coordinator_office")
    client = live.api(coordinator)
    listing = client.get("/api/v1/cases?limit=50").json()
    assert listing["total"] == 3
    detail = client.get(f"/api/v1/cases/{listing['items'][0]['id']}").json()
    assert detail["victim"] == {} and detail["details"] == {} and detail["victim_id"] is None
