"""The reporting store: one row per case episode, derived from the audit timeline.

These tables are a *cache* of what the hash-chained audit trail says, plus the clear,
coarse statistical projection of each case (the dimensions coordinators filter on). They
hold no sealed column and nothing a sealed column could be recovered from.

They live in their own metadata (not ``app.db.base.Base``):

* on PostgreSQL in the schema ``reporting``, created by migration ``0006_reporting`` and
  refreshed incrementally (``app.reporting.store.refresh``);
* on SQLite (the embedded, small-scale engine) as TEMP tables of the connection, built on
  demand from the timeline (``schema_translate_map`` maps ``reporting`` to ``temp``).

A row is rebuilt whenever its case's audit chain has grown (``case_sync.seq`` lags behind
``audit_chain_heads.seq``): every change to a case writes an audit event in its chain, so
the store can never silently go stale.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
)

from app.db.base import UTCDateTime

SCHEMA = "reporting"

metadata = MetaData(schema=SCHEMA)


def _ts(name: str) -> Column[object]:
    return Column(name, UTCDateTime(), nullable=True)


def _flag(name: str) -> Column[object]:
    return Column(name, Boolean, nullable=True)


def _count(name: str) -> Column[object]:
    return Column(name, Integer, nullable=False, default=0)


episodes = Table(
    "episodes",
    metadata,
    Column("case_id", Uuid, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("reference", String(20), nullable=False),
    Column("is_current", Boolean, nullable=False),
    # dimensions (the case's clear statistical projection)
    Column("country_profile", String(40), nullable=False),
    Column("owning_agency_id", Uuid, nullable=False),
    Column("region", String(100), nullable=True),
    Column("nationality", String(2), nullable=True),
    Column("sex", String(10), nullable=False),
    Column("age_band", String(10), nullable=False),
    Column("exploitation_forms", String(400), nullable=False),  # ",labour,sexual,"
    Column("exploitation_category", String(30), nullable=False),  # one form, multiple, unknown
    Column("detecting_org_type", String(30), nullable=False),
    Column("detected_on", Date, nullable=False),
    Column("detected_year", Integer, nullable=False),
    Column("detected_quarter", String(7), nullable=False),
    Column("detected_month", String(7), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("reflection_gated", Boolean, nullable=False),
    # current episode only: earliest due date of the case's open deadlines (open_deadlines),
    # so "has an overdue deadline" is a test on this row, not a join
    _ts("next_due_at"),
    # milestones, from the timeline
    _ts("registered_at"),
    _ts("screened_at"),
    _ts("declined_at"),
    _ts("referred_at"),
    Column("referred_quarter", String(7), nullable=True),
    Column("referral_days", Integer, nullable=True),
    _flag("referral_on_time"),
    _flag("referral_consent"),
    _flag("child_pathway"),
    _ts("rg_due_at"),
    _ts("rg_decided_at"),
    _flag("rg_positive"),
    Column("rg_working_days", Integer, nullable=True),
    _flag("rg_on_time"),
    _ts("reflection_started_at"),
    _ts("reflection_min_end_at"),
    _ts("reflection_cut_at"),
    _count("enforcement_in_reflection"),
    _ts("contact_due_at"),
    _ts("first_contact_at"),
    Column("contact_hours", Integer, nullable=True),
    _flag("contact_on_time"),
    _ts("id_decided_at"),
    Column("id_decided_quarter", String(7), nullable=True),
    _flag("id_positive"),
    Column("id_days", Integer, nullable=True),
    _flag("id_before_min"),
    _ts("identified_at"),
    _ts("support_started_at"),
    _count("negatives"),
    _count("negatives_second_reviewed"),
    _ts("negative_at"),
    _ts("reconsideration_at"),
    _flag("reconsideration_in_window"),
    Column("reconsideration_outcome", String(20), nullable=True),
    _ts("guardian_requested_at"),
    _ts("guardian_assigned_at"),
    Column("guardian_hours", Integer, nullable=True),
    _count("missing_child_reports"),
    _flag("missing_child_open"),
    _count("lost_contact_reports"),
    _count("assistance_refusals"),
    _count("consent_withdrawals"),
    _ts("return_requested_at"),
    _ts("returned_at"),
    Column("return_days", Integer, nullable=True),
    _flag("return_risk_assessed"),
    _flag("return_voluntary"),
    _flag("return_receiving_org"),
    _flag("return_data_consent"),
    _flag("return_child_without_bia"),
    _count("returns_cancelled"),
    _ts("reintegration_at"),
    Column("follow_ups_reached", String(100), nullable=True),  # ",30,90," checkpoints reached
    _ts("re_trafficked_at"),
    _ts("closed_at"),
    Column("closure_reason", String(40), nullable=True),
    PrimaryKeyConstraint("case_id", "episode", name="pk_reporting_episodes"),
    Index("ix_reporting_episodes_detected_on", "detected_on"),
    Index("ix_reporting_episodes_agency", "owning_agency_id"),
)

case_sync = Table(
    "case_sync",
    metadata,
    Column("chain_key", String(60), primary_key=True),
    Column("case_id", Uuid, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("refreshed_at", UTCDateTime(), nullable=False),
)

open_deadlines = Table(
    "open_deadlines",
    metadata,
    Column("case_id", Uuid, nullable=False),
    Column("owning_agency_id", Uuid, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("checkpoint", Integer, nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("soon_from", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("case_id", "kind", "checkpoint", name="pk_reporting_open_deadlines"),
)

# One row: how many case chains, and the sum of their heads' sequence numbers, the store was
# last brought up to date with. Every append raises the sum, so an unchanged pair means there
# is nothing to rebuild, found without joining the two chain tables.
sync_state = Table(
    "sync_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chains", Integer, nullable=False),
    Column("seq_total", BigInteger, nullable=False),
    Column("refreshed_at", UTCDateTime(), nullable=False),
)

TABLES = (episodes, case_sync, open_deadlines, sync_state)
