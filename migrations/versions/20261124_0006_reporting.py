"""Reporting store (PostgreSQL): per-episode milestones derived from the audit timeline.

A schema of its own, ``reporting``, holding a cache the application rebuilds from the
hash-chained audit trail (app/reporting/store.py): one row per case episode with its
milestones and clear statistical dimensions, the sequence number each case was built from,
and each open case's deadlines still to be met. Nothing here is sealed or personal beyond
the coarse projection already stored in clear on ``cases``.

The tables live outside ``public`` on purpose: they are not part of the application's
declarative models (``app.db.base.Base``) but of ``app.reporting.models.metadata``. Row-level
security limits them to the national scope (coordinators) and the system scope (jobs).

SQLite builds the same tables as TEMP tables per connection, at run time; nothing to do here.

Revision ID: 0006_reporting
Revises: 0005_transnational
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006_reporting"
down_revision: str | None = "0005_transnational"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reporting"
TABLES = ("episodes", "case_sync", "open_deadlines", "sync_state")
# The scope is read once per statement (an InitPlan), not once per row: cheaper, and the
# planner does not mistake the per-row test for a selective filter.
NATIONAL = "(SELECT passage_scope()) IN ('system', 'national')"


def _app_role() -> str | None:
    from app.config import get_settings

    role = context.config.attributes.get("app_role") or get_settings().db_app_role
    if role is not None and not role.replace("_", "").isalnum():
        raise ValueError("PASSAGE_DB_APP_ROLE must be a plain identifier")
    return role


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE SCHEMA {SCHEMA}")
    op.create_table(
        "episodes",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("country_profile", sa.String(length=40), nullable=False),
        sa.Column("owning_agency_id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("nationality", sa.String(length=2), nullable=True),
        sa.Column("sex", sa.String(length=10), nullable=False),
        sa.Column("age_band", sa.String(length=10), nullable=False),
        sa.Column("exploitation_forms", sa.String(length=400), nullable=False),
        sa.Column("exploitation_category", sa.String(length=30), nullable=False),
        sa.Column("detecting_org_type", sa.String(length=30), nullable=False),
        sa.Column("detected_on", sa.Date(), nullable=False),
        sa.Column("detected_year", sa.Integer(), nullable=False),
        sa.Column("detected_quarter", sa.String(length=7), nullable=False),
        sa.Column("detected_month", sa.String(length=7), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("reflection_gated", sa.Boolean(), nullable=False),
        _ts("next_due_at"),
        _ts("registered_at"),
        _ts("screened_at"),
        _ts("declined_at"),
        _ts("referred_at"),
        sa.Column("referred_quarter", sa.String(length=7), nullable=True),
        sa.Column("referral_days", sa.Integer(), nullable=True),
        sa.Column("referral_on_time", sa.Boolean(), nullable=True),
        sa.Column("referral_consent", sa.Boolean(), nullable=True),
        sa.Column("child_pathway", sa.Boolean(), nullable=True),
        _ts("rg_due_at"),
        _ts("rg_decided_at"),
        sa.Column("rg_positive", sa.Boolean(), nullable=True),
        sa.Column("rg_working_days", sa.Integer(), nullable=True),
        sa.Column("rg_on_time", sa.Boolean(), nullable=True),
        _ts("reflection_started_at"),
        _ts("reflection_min_end_at"),
        _ts("reflection_cut_at"),
        sa.Column("enforcement_in_reflection", sa.Integer(), nullable=False),
        _ts("contact_due_at"),
        _ts("first_contact_at"),
        sa.Column("contact_hours", sa.Integer(), nullable=True),
        sa.Column("contact_on_time", sa.Boolean(), nullable=True),
        _ts("id_decided_at"),
        sa.Column("id_decided_quarter", sa.String(length=7), nullable=True),
        sa.Column("id_positive", sa.Boolean(), nullable=True),
        sa.Column("id_days", sa.Integer(), nullable=True),
        sa.Column("id_before_min", sa.Boolean(), nullable=True),
        _ts("identified_at"),
        _ts("support_started_at"),
        sa.Column("negatives", sa.Integer(), nullable=False),
        sa.Column("negatives_second_reviewed", sa.Integer(), nullable=False),
        _ts("negative_at"),
        _ts("reconsideration_at"),
        sa.Column("reconsideration_in_window", sa.Boolean(), nullable=True),
        sa.Column("reconsideration_outcome", sa.String(length=20), nullable=True),
        _ts("guardian_requested_at"),
        _ts("guardian_assigned_at"),
        sa.Column("guardian_hours", sa.Integer(), nullable=True),
        sa.Column("missing_child_reports", sa.Integer(), nullable=False),
        sa.Column("missing_child_open", sa.Boolean(), nullable=True),
        sa.Column("lost_contact_reports", sa.Integer(), nullable=False),
        sa.Column("assistance_refusals", sa.Integer(), nullable=False),
        sa.Column("consent_withdrawals", sa.Integer(), nullable=False),
        _ts("return_requested_at"),
        _ts("returned_at"),
        sa.Column("return_days", sa.Integer(), nullable=True),
        sa.Column("return_risk_assessed", sa.Boolean(), nullable=True),
        sa.Column("return_voluntary", sa.Boolean(), nullable=True),
        sa.Column("return_receiving_org", sa.Boolean(), nullable=True),
        sa.Column("return_data_consent", sa.Boolean(), nullable=True),
        sa.Column("return_child_without_bia", sa.Boolean(), nullable=True),
        sa.Column("returns_cancelled", sa.Integer(), nullable=False),
        _ts("reintegration_at"),
        sa.Column("follow_ups_reached", sa.String(length=100), nullable=True),
        _ts("re_trafficked_at"),
        _ts("closed_at"),
        sa.Column("closure_reason", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "episode", name="pk_reporting_episodes"),
        schema=SCHEMA,
    )
    op.create_index("ix_reporting_episodes_detected_on", "episodes", ["detected_on"], schema=SCHEMA)
    op.create_index("ix_reporting_episodes_agency", "episodes", ["owning_agency_id"], schema=SCHEMA)
    op.create_table(
        "case_sync",
        sa.Column("chain_key", sa.String(length=60), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name="pk_reporting_case_sync"),
        schema=SCHEMA,
    )
    op.create_table(
        "open_deadlines",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("owning_agency_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("checkpoint", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("soon_from", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "case_id", "kind", "checkpoint", name="pk_reporting_open_deadlines"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chains", sa.Integer(), nullable=False),
        sa.Column("seq_total", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reporting_sync_state"),
        schema=SCHEMA,
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE {SCHEMA}.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {SCHEMA}.{table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_national ON {SCHEMA}.{table} "
            f"USING ({NATIONAL}) WITH CHECK ({NATIONAL})"
        )
    role = _app_role()
    if role:
        op.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}")
        for table in TABLES:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.{table} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
