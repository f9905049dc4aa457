"""Row-level security on cases and victims (PostgreSQL), keyed by the per-transaction context.

A backstop behind the application's scoping (app/authz/scoping.py): a bug that forgets a
filter still cannot read another agency's cases. Tables are FORCE'd so even their owner is
subject to the policies; the app role owns nothing and has no BYPASSRLS.

Revision ID: 0003_rls
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_rls"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASE_VISIBLE = """
    passage_scope() IN ('system', 'national')
    OR (passage_scope() = 'agency' AND (
        owning_agency_id = passage_agency()
        OR EXISTS (
            SELECT 1 FROM case_participants p
            WHERE p.case_id = cases.id AND p.agency_id = passage_agency()
              AND p.revoked_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > now())
        )
    ))
    OR (passage_scope() = 'assigned' AND guardian_user_id = passage_user())
    OR EXISTS (
        SELECT 1 FROM break_glass_grants g
        WHERE g.case_id = cases.id AND g.user_id = passage_user() AND g.expires_at > now()
    )
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, setting, cast in (
        ("passage_scope", "passage.scope", "text"),
        ("passage_agency", "passage.agency_id", "uuid"),
        ("passage_user", "passage.user_id", "uuid"),
    ):
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS {cast} LANGUAGE sql STABLE AS "
            f"$$ SELECT NULLIF(current_setting('{setting}', true), '')::{cast} $$"
        )
    op.execute("ALTER TABLE cases ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE cases FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY cases_select ON cases FOR SELECT USING ({CASE_VISIBLE})")
    op.execute(
        f"CREATE POLICY cases_update ON cases FOR UPDATE USING ({CASE_VISIBLE}) WITH CHECK ({CASE_VISIBLE})"
    )
    op.execute(
        "CREATE POLICY cases_insert ON cases FOR INSERT WITH CHECK ("
        "passage_scope() = 'system' OR (passage_scope() = 'agency' AND owning_agency_id = passage_agency()))"
    )
    op.execute("ALTER TABLE victims ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE victims FORCE ROW LEVEL SECURITY")
    # A victim is visible exactly when one of its cases is (the subquery is itself filtered).
    victim_visible = "passage_scope() = 'system' OR EXISTS (SELECT 1 FROM cases c WHERE c.victim_id = victims.id)"
    op.execute(f"CREATE POLICY victims_select ON victims FOR SELECT USING ({victim_visible})")
    op.execute(
        f"CREATE POLICY victims_update ON victims FOR UPDATE USING ({victim_visible}) WITH CHECK (true)"
    )
    op.execute(
        "CREATE POLICY victims_insert ON victims FOR INSERT WITH CHECK ("
        "passage_scope() = 'system' OR (passage_scope() = 'agency' AND registered_by_agency_id = passage_agency()))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for policy, table in (
        ("victims_insert", "victims"),
        ("victims_update", "victims"),
        ("victims_select", "victims"),
        ("cases_insert", "cases"),
        ("cases_update", "cases"),
        ("cases_select", "cases"),
    ):
        op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
    op.execute("ALTER TABLE victims NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE victims DISABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE cases NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE cases DISABLE ROW LEVEL SECURITY")
    for name in ("passage_scope", "passage_agency", "passage_user"):
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
