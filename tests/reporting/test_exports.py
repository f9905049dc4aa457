"""Exports on a few hundred synthetic cases: suppressed tables, k-anonymous records, audited."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.service import actor_for
from app.demo import load_demo_data
from app.errors import InvalidInput
from app.reporting.exports import QUASI_IDENTIFIERS, RECORD_FIELDS, build_export
from app.reporting.indicators import make_filters
from app.reporting.suppression import PublishedTable
from tests.reporting.test_suppression import computable_cells


@pytest.fixture
def loaded(session, ctx, world):
    load_demo_data(session, ctx, cases=300, seed=3, bulk=True)
    agency = world.agency("coordinator_office")
    return actor_for(world.user("coordinator", agency), agency)


def lines(table: dict) -> list[list[int | None]]:
    rows = table["rows"]
    out = [[*r["cells"], r["total"]] for r in rows]
    out.append([*table["column_totals"], table["grand_total"]])
    for j in range(len(table["columns"])):
        out.append([*(r["cells"][j] for r in rows), table["column_totals"][j]])
    out.append([*(r["total"] for r in rows), table["grand_total"]])
    return out


@pytest.mark.parametrize("kind", ["nrm_quarterly", "eurostat"])
def test_aggregate_tables_hide_small_cells_and_cannot_be_unpicked(
    loaded, session, ctx, kind
) -> None:
    content, media, name = build_export(session, ctx, loaded, kind, "json", make_filters(ctx))
    body = json.loads(content)
    assert body["k"] == 5 and media == "application/json" and name.endswith(".json")
    assert body["tables"]
    withheld = 0
    for table in body["tables"]:
        for line in lines(table):
            assert all(v is None or v >= 5 for v in line), (table["name"], line)
            assert sum(v is None for v in line) != 1, (table["name"], line)
            withheld += sum(v is None for v in line)
        published = PublishedTable(
            table["name"], "", "", "", [r["label"] for r in table["rows"]], table["columns"],
            cells=[r["cells"] for r in table["rows"]],
            row_totals=[r["total"] for r in table["rows"]],
            column_totals=table["column_totals"], grand_total=table["grand_total"],
        )  # fmt: skip
        assert computable_cells(published) == [], table["name"]  # rows and columns combined
    assert withheld > 0  # 300 cases spread over many cells: something is always withheld
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "statistics_exported")
    ).one()
    assert event.details == {"kind": kind, "k": 5, "rows": event.details["rows"], "format": "json"}
    assert event.actor_role == "coordinator" and event.details["rows"] > 0


def test_nrm_totals_are_the_true_totals_where_shown(loaded, session, ctx) -> None:
    content, _, _ = build_export(session, ctx, loaded, "nrm_quarterly", "json", make_filters(ctx))
    tables = {t["name"]: t for t in json.loads(content)["tables"]}
    referrals = {
        tables[name]["grand_total"]
        for name in (
            "referrals_by_quarter_and_age",
            "referrals_by_nationality_and_sex",
            "referrals_by_exploitation_and_age",
            "referrals_by_first_responder_and_quarter",
        )
    }
    assert len(referrals) == 1  # the four referral tables describe one population


def test_csv_tables_never_show_a_small_number(loaded, session, ctx) -> None:
    content, media, _ = build_export(
        session, ctx, loaded, "nrm_quarterly", "csv", make_filters(ctx), k=7
    )
    assert media.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(content)))
    assert rows and set(rows[0]) == {
        "table", "row_dimension", "row", "column_dimension", "column", "value", "status",
    }  # fmt: skip
    for row in rows:
        if row["status"] == "suppressed":
            assert row["value"] == ""
        else:
            assert int(row["value"]) >= 7


def test_record_level_export_is_k_anonymous(loaded, session, ctx) -> None:
    content, _, _ = build_export(session, ctx, loaded, "ctdc_records", "json", make_filters(ctx))
    body = json.loads(content)
    assert body["k"] == 11
    records = body["records"]
    assert records and body["records_in"] == len(records) + body["records_suppressed"]
    qis = [h.field for h in QUASI_IDENTIFIERS]
    classes = Counter(tuple(r[q] for q in qis) for r in records)
    assert min(classes.values()) >= 11
    assert all(set(r) == set(RECORD_FIELDS) for r in records)
    assert "CountryOfExploitation" not in content  # sealed in Passage: never exported
    csv_content, _, _ = build_export(session, ctx, loaded, "ctdc_records", "csv", make_filters(ctx))
    parsed = list(csv.DictReader(io.StringIO(csv_content)))
    assert Counter(tuple(r[q] for q in qis) for r in parsed) == classes


def test_k_can_be_raised_not_lowered(loaded, session, ctx) -> None:
    with pytest.raises(InvalidInput):
        build_export(session, ctx, loaded, "nrm_quarterly", "json", make_filters(ctx), k=3)
    with pytest.raises(InvalidInput):
        build_export(session, ctx, loaded, "ctdc_records", "json", make_filters(ctx), k=10)
    content, _, _ = build_export(
        session, ctx, loaded, "ctdc_records", "json", make_filters(ctx), k=25
    )
    body = json.loads(content)
    qis = [h.field for h in QUASI_IDENTIFIERS]
    assert (
        min(Counter(tuple(r[q] for q in qis) for r in body["records"]).values(), default=25) >= 25
    )
