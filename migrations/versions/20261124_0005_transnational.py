"""Transnational referral mechanism: directory, pinned keys, threads, messages, signed
evidence (append-only), attachments, sealed records and quarantine.

PostgreSQL: the application role gets ordinary DML on the new tables but only INSERT and
SELECT on the evidence (triggers refuse UPDATE, DELETE and TRUNCATE, as on audit_events);
threads and everything hanging off them get row-level security keyed by the per-transaction
context (the focal-point agency handling a thread, the organisation named to receive the
person, or the system scope of the exchange endpoint and the dispatcher).

Revision ID: 0005_transnational
Revises: 0004_idempotency
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005_transnational"
down_revision: str | None = "0004_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "transnational_local_instance",
    "transnational_partners",
    "transnational_partner_contacts",
    "transnational_partner_keys",
    "transnational_quarantine",
    "transnational_exchanges",
    "transnational_attachments",
    "transnational_evidence",
    "transnational_exchange_keys",
    "transnational_messages",
    "transnational_records",
)
# Children of a thread: visible exactly when their thread is (the subquery is itself filtered).
THREAD_CHILDREN = (
    "transnational_attachments",
    "transnational_evidence",
    "transnational_exchange_keys",
    "transnational_messages",
    "transnational_records",
)
THREAD_VISIBLE = (
    "passage_scope() = 'system' OR (passage_scope() = 'agency' AND ("
    "local_agency_id = passage_agency() OR receiving_agency_id = passage_agency()))"
)
CHILD_VISIBLE = (
    "passage_scope() = 'system' OR EXISTS (SELECT 1 FROM transnational_exchanges e "
    "WHERE e.id = {table}.exchange_id)"
)


def _app_role() -> str | None:
    from app.config import get_settings

    role = context.config.attributes.get("app_role") or get_settings().db_app_role
    if role is not None and not role.replace("_", "").isalnum():
        raise ValueError("PASSAGE_DB_APP_ROLE must be a plain identifier")
    return role


def _postgres_upgrade() -> None:
    role = _app_role()
    if role:
        for table in TABLES:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON transnational_evidence FROM {role}")
    op.execute(
        """
        CREATE FUNCTION transnational_evidence_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'transnational_evidence is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER transnational_evidence_no_update_delete BEFORE UPDATE OR DELETE "
        "ON transnational_evidence FOR EACH ROW EXECUTE FUNCTION transnational_evidence_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER transnational_evidence_no_truncate BEFORE TRUNCATE "
        "ON transnational_evidence FOR EACH STATEMENT EXECUTE FUNCTION transnational_evidence_refuse_change()"
    )
    op.execute("ALTER TABLE transnational_exchanges ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE transnational_exchanges FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY transnational_exchanges_all ON transnational_exchanges FOR ALL "
        f"USING ({THREAD_VISIBLE}) WITH CHECK ({THREAD_VISIBLE})"
    )
    for table in THREAD_CHILDREN:
        visible = CHILD_VISIBLE.format(table=table)
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_all ON {table} FOR ALL USING ({visible}) WITH CHECK ({visible})"
        )


def _postgres_downgrade() -> None:
    for table in THREAD_CHILDREN:
        op.execute(f"DROP POLICY IF EXISTS {table}_all ON {table}")
    op.execute("DROP POLICY IF EXISTS transnational_exchanges_all ON transnational_exchanges")
    op.execute(
        "DROP TRIGGER IF EXISTS transnational_evidence_no_truncate ON transnational_evidence"
    )
    op.execute(
        "DROP TRIGGER IF EXISTS transnational_evidence_no_update_delete ON transnational_evidence"
    )
    op.execute("DROP FUNCTION IF EXISTS transnational_evidence_refuse_change()")


def upgrade() -> None:
    op.create_table(
        "transnational_partners",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=300), nullable=False),
        sa.Column("working_languages", sa.JSON(), nullable=False),
        sa.Column("last_verified_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended')", name=op.f("ck_transnational_partners_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_transnational_partners_agency_id_agencies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_partners")),
        sa.UniqueConstraint("agency_id", name=op.f("uq_transnational_partners_agency_id")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_transnational_partners_instance_id")),
    )
    op.create_table(
        "transnational_local_instance",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=False),
        sa.Column("focal_point_agency_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_transnational_local_instance_singleton")),
        sa.ForeignKeyConstraint(
            ["focal_point_agency_id"],
            ["agencies.id"],
            name=op.f("fk_transnational_local_instance_focal_point_agency_id_agencies"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_transnational_local_instance_updated_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_local_instance")),
    )
    op.create_table(
        "transnational_partner_contacts",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("role_title", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=30), nullable=True),
        sa.Column("rank", sa.String(length=10), nullable=False),
        sa.Column("out_of_hours", sa.Boolean(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "rank IN ('primary', 'deputy')",
            name=op.f("ck_transnational_partner_contacts_rank_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["transnational_partners.id"],
            name=op.f("fk_transnational_partner_contacts_partner_id_transnational_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_partner_contacts")),
    )
    with op.batch_alter_table("transnational_partner_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_partner_contacts_partner_id"), ["partner_id"], unique=False
        )

    op.create_table(
        "transnational_partner_keys",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("use", sa.String(length=3), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("pinned_via", sa.String(length=20), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned_by", sa.Uuid(), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=40), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'revoked')",
            name=op.f("ck_transnational_partner_keys_status_valid"),
        ),
        sa.CheckConstraint(
            "use IN ('sig', 'enc')", name=op.f("ck_transnational_partner_keys_use_valid")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["transnational_partners.id"],
            name=op.f("fk_transnational_partner_keys_partner_id_transnational_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["pinned_by"], ["users.id"], name=op.f("fk_transnational_partner_keys_pinned_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_partner_keys")),
        sa.UniqueConstraint("partner_id", "kid", name="uq_transnational_partner_keys_partner_kid"),
    )
    with op.batch_alter_table("transnational_partner_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_partner_keys_partner_id"), ["partner_id"], unique=False
        )

    op.create_table(
        "transnational_quarantine",
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=True),
        sa.Column("claimed_issuer", sa.String(length=200), nullable=True),
        sa.Column("claimed_kid", sa.String(length=100), nullable=True),
        sa.Column("claimed_jti", sa.String(length=100), nullable=True),
        sa.Column("claimed_typ", sa.String(length=40), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["transnational_partners.id"],
            name=op.f("fk_transnational_quarantine_partner_id_transnational_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["users.id"],
            name=op.f("fk_transnational_quarantine_reviewed_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_quarantine")),
    )
    with op.batch_alter_table("transnational_quarantine", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_quarantine_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "transnational_exchanges",
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("local_agency_id", sa.Uuid(), nullable=False),
        sa.Column("receiving_agency_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("consent_ids", sa.JSON(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("age_band", sa.String(length=10), nullable=True),
        sa.Column("remote_case_reference", sa.String(length=40), nullable=True),
        sa.Column("receiving_organisation_name", sa.String(length=200), nullable=True),
        sa.Column("receiving_organisation_type", sa.String(length=40), nullable=True),
        sa.Column("decision_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=40), nullable=True),
        sa.Column("risk_level_local", sa.String(length=10), nullable=True),
        sa.Column("risk_level_partner", sa.String(length=10), nullable=True),
        sa.Column("risk_finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("travel_on", sa.Date(), nullable=True),
        sa.Column("arrived_on", sa.Date(), nullable=True),
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_checkpoints_days", sa.JSON(), nullable=False),
        sa.Column("re_trafficking_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "direction IN ('outgoing', 'incoming')",
            name=op.f("ck_transnational_exchanges_direction_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'delivered', 'received', 'accepted', 'rejected', 'travel_arranged', 'arrived', 'handed_over', 'monitoring', 'closed', 'refused_by_partner', 'delivery_failed', 'consent_withdrawn')",
            name=op.f("ck_transnational_exchanges_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_transnational_exchanges_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["local_agency_id"],
            ["agencies.id"],
            name=op.f("fk_transnational_exchanges_local_agency_id_agencies"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["transnational_partners.id"],
            name=op.f("fk_transnational_exchanges_partner_id_transnational_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["receiving_agency_id"],
            ["agencies.id"],
            name=op.f("fk_transnational_exchanges_receiving_agency_id_agencies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_exchanges")),
        sa.UniqueConstraint(
            "partner_id", "thread_id", name="uq_transnational_exchanges_partner_thread"
        ),
    )
    with op.batch_alter_table("transnational_exchanges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transnational_exchanges_agency_status", ["local_agency_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transnational_exchanges_case_id"), ["case_id"], unique=False
        )

    op.create_table(
        "transnational_attachments",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("message_jti", sa.String(length=100), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["transnational_exchanges.id"],
            name=op.f("fk_transnational_attachments_exchange_id_transnational_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_attachments")),
    )
    with op.batch_alter_table("transnational_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_attachments_exchange_id"), ["exchange_id"], unique=False
        )

    op.create_table(
        "transnational_evidence",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("typ", sa.String(length=30), nullable=False),
        sa.Column("msg_type", sa.String(length=30), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=False),
        sa.Column("jti", sa.String(length=100), nullable=False),
        sa.Column("signing_kid", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("token_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("token_clear", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('package_sent', 'package_received', 'receipt_sent', 'receipt_received')",
            name=op.f("ck_transnational_evidence_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["transnational_exchanges.id"],
            name=op.f("fk_transnational_evidence_exchange_id_transnational_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_evidence")),
    )
    with op.batch_alter_table("transnational_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_evidence_exchange_id"), ["exchange_id"], unique=False
        )

    op.create_table(
        "transnational_exchange_keys",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("kek_kid", sa.String(length=40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["transnational_exchanges.id"],
            name=op.f("fk_transnational_exchange_keys_exchange_id_transnational_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_exchange_keys")),
        sa.UniqueConstraint("exchange_id", name=op.f("uq_transnational_exchange_keys_exchange_id")),
    )
    with op.batch_alter_table("transnational_exchange_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_exchange_keys_kek_kid"), ["kek_kid"], unique=False
        )

    op.create_table(
        "transnational_messages",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("msg_type", sa.String(length=30), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=False),
        sa.Column("audience", sa.String(length=200), nullable=False),
        sa.Column("jti", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("attachment_tokens", sa.JSON(), nullable=True),
        sa.Column("consent_ids", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=60), nullable=True),
        sa.Column("refusal_reason", sa.String(length=40), nullable=True),
        sa.Column("evidence_id", sa.Uuid(), nullable=True),
        sa.Column("receipt_evidence_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "direction IN ('outgoing', 'incoming')",
            name=op.f("ck_transnational_messages_direction_valid"),
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'delivered', 'refused', 'failed', 'cancelled', 'expired', 'received')",
            name=op.f("ck_transnational_messages_state_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["transnational_exchanges.id"],
            name=op.f("fk_transnational_messages_exchange_id_transnational_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_messages")),
        sa.UniqueConstraint("issuer", "jti", name="uq_transnational_messages_issuer_jti"),
    )
    with op.batch_alter_table("transnational_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_messages_exchange_id"), ["exchange_id"], unique=False
        )
        batch_op.create_index(
            "ix_transnational_messages_state_due", ["state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "transnational_records",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("side", sa.String(length=10), nullable=False),
        sa.Column("codes", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_transnational_records_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["transnational_exchanges.id"],
            name=op.f("fk_transnational_records_exchange_id_transnational_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transnational_records")),
    )
    with op.batch_alter_table("transnational_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transnational_records_exchange_id"), ["exchange_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgres_downgrade()
    with op.batch_alter_table("transnational_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_records_exchange_id"))

    op.drop_table("transnational_records")
    with op.batch_alter_table("transnational_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_transnational_messages_state_due")
        batch_op.drop_index(batch_op.f("ix_transnational_messages_exchange_id"))

    op.drop_table("transnational_messages")
    with op.batch_alter_table("transnational_exchange_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_exchange_keys_kek_kid"))

    op.drop_table("transnational_exchange_keys")
    with op.batch_alter_table("transnational_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_evidence_exchange_id"))

    op.drop_table("transnational_evidence")
    with op.batch_alter_table("transnational_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_attachments_exchange_id"))

    op.drop_table("transnational_attachments")
    with op.batch_alter_table("transnational_exchanges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_exchanges_case_id"))
        batch_op.drop_index("ix_transnational_exchanges_agency_status")

    op.drop_table("transnational_exchanges")
    with op.batch_alter_table("transnational_quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_quarantine_received_at"))

    op.drop_table("transnational_quarantine")
    with op.batch_alter_table("transnational_partner_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_partner_keys_partner_id"))

    op.drop_table("transnational_partner_keys")
    with op.batch_alter_table("transnational_partner_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transnational_partner_contacts_partner_id"))

    op.drop_table("transnational_partner_contacts")
    op.drop_table("transnational_local_instance")
    op.drop_table("transnational_partners")
