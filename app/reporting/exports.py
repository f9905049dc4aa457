"""Privacy-safe statistical exports: aggregate tables and a de-identified record file.

* ``nrm_quarterly``: tables in the dimensions of the UK NRM quarterly statistics (referrals
  by quarter, age band at registration, nationality, sex, exploitation type and first
  responder type; reasonable-grounds and conclusive (identification) decisions by outcome
  and age band), with small-cell suppression.
* ``eurostat``: registered victims per year by citizenship group (reporting country, other
  EU, non-EU), exploitation form and age band, each crossed with sex, with small-cell
  suppression.
* ``ctdc_records``: one record per registration shaped like the CTDC/HTCDS global dataset
  (yearOfRegistration, gender, ageBroad, citizenship, exploitation flags, first responder
  type, case and trafficking status), k-anonymised over its quasi-identifiers.
  ``CountryOfExploitation`` is not exported: it is sealed (personal) in Passage and reporting
  never opens a sealed field. Neither are ``traffickMonths``, means or recruiter relation
  fields, for the same reason.

Every export is audited (``statistics_exported``: kind, k, rows, format) in the request's
transaction. ``k`` may be raised per request, never lowered below the default.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.context import AppContext
from app.db.base import utcnow
from app.errors import InvalidInput
from app.reporting.geo import citizenship_group, region_of
from app.reporting.indicators import E, Filters, detection_period, dimension_conditions
from app.reporting.store import execute, refresh
from app.reporting.suppression import (
    CountTable,
    PublishedTable,
    hierarchy,
    k_anonymise,
    suppress,
)

ExportKind = Literal["nrm_quarterly", "eurostat", "ctdc_records"]
ExportFormat = Literal["csv", "json"]
KINDS: tuple[str, ...] = ("nrm_quarterly", "eurostat", "ctdc_records")
DEFAULT_K_TABLES = 5
DEFAULT_K_RECORDS = 11
MAX_K = 1000

AGE_BANDS = ("adult", "child", "unknown")
SEXES = ("female", "male", "other", "unknown")
NRM_EXPLOITATION = (
    "labour",
    "sexual",
    "criminal",
    "domestic_servitude",
    "multiple",
    "other",
    "unknown",
)
FIRST_RESPONDERS = (
    "police", "border_guard", "labour_inspection", "ngo", "social_services", "health",
    "consulate", "carrier", "self_referral", "other",
)  # fmt: skip
CITIZENSHIP_GROUPS = ("reporting_country", "other_eu", "non_eu", "unknown")
TOP_NATIONALITIES = 10


def default_k(kind: str) -> int:
    return DEFAULT_K_RECORDS if kind == "ctdc_records" else DEFAULT_K_TABLES


def check_k(kind: str, k: int | None) -> int:
    floor = default_k(kind)
    if k is None:
        return floor
    if k < floor or k > MAX_K:
        raise InvalidInput(f"k must be between {floor} and {MAX_K} for {kind}")
    return k


def nrm_exploitation(category: str) -> str:
    """UK NRM exploitation types from a case's exploitation category."""
    if category in ("labour", "sexual", "domestic_servitude", "multiple", "unknown"):
        return category
    if category == "forced_criminality":
        return "criminal"
    return "other"


def _bounds(f: Filters) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(f.date_from, time.min, tzinfo=UTC) if f.date_from else None
    end = datetime.combine(f.date_to, time.min, tzinfo=UTC) if f.date_to else None
    return start, end


def _table(
    name: str,
    title: str,
    row_dimension: str,
    column_dimension: str,
    counts: Counter[tuple[str, str]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    link: str,
    row_link: str,
    column_link: str,
) -> CountTable:
    return CountTable(
        name=name,
        title=title,
        row_dimension=row_dimension,
        column_dimension=column_dimension,
        rows=list(rows),
        columns=list(columns),
        cells=[[counts[(r, c)] for c in columns] for r in rows],
        row_keys=[f"{link}:{row_link}:{r}" for r in rows],
        column_keys=[f"{link}:{column_link}:{c}" for c in columns],
        total_key=f"{link}:total",
    ).without_empty_lines()


# --------------------------------------------------------------------------- NRM


def nrm_tables(session: Session, ctx: AppContext, f: Filters, *, k: int) -> list[PublishedTable]:
    start, end = _bounds(f)
    dims = dimension_conditions(f)

    def period(column: Any) -> list[Any]:
        conds = [column.is_not(None)]
        if start is not None:
            conds.append(column >= start)
        if end is not None:
            conds.append(column < end)
        return conds

    # Counted in the database: one row per combination of the published dimensions.
    stmt = (
        select(
            E.referred_quarter,
            E.age_band,
            E.nationality,
            E.sex,
            E.exploitation_category,
            E.detecting_org_type,
            func.count(),
        )
        .where(*dims, *period(E.referred_at))
        .group_by(
            E.referred_quarter,
            E.age_band,
            E.nationality,
            E.sex,
            E.exploitation_category,
            E.detecting_org_type,
        )
    )
    referrals = [tuple(row) for row in execute(session, stmt)]
    rg: Counter[tuple[str, str]] = Counter()
    cg: Counter[tuple[str, str]] = Counter()
    for positive_col, at_col, counter in (
        (E.rg_positive, E.rg_decided_at, rg),
        (E.id_positive, E.id_decided_at, cg),
    ):
        decided = (
            select(positive_col, E.age_band, func.count())
            .where(*dims, *period(at_col))
            .group_by(positive_col, E.age_band)
        )
        for positive, band, n in execute(session, decided):
            counter[("positive" if positive else "negative", band)] += int(n)
    quarters = sorted({quarter for quarter, *_ in referrals if quarter})
    by_quarter_age: Counter[tuple[str, str]] = Counter()
    by_nationality_sex: Counter[tuple[str, str]] = Counter()
    by_exploitation_age: Counter[tuple[str, str]] = Counter()
    by_responder_quarter: Counter[tuple[str, str]] = Counter()
    nationality_totals: Counter[str] = Counter()
    for _, _, nationality, _, _, _, n in referrals:
        nationality_totals[nationality or "unknown"] += int(n)
    top = [x for x, _ in sorted(nationality_totals.items(), key=lambda x: (-x[1], x[0]))]
    shown = set(top[:TOP_NATIONALITIES])
    for quarter, band, nationality, sex, category, responder, n in referrals:
        count = int(n)
        nationality = nationality or "unknown"
        nationality = nationality if nationality in shown else "other"
        by_quarter_age[(quarter, band)] += count
        by_nationality_sex[(nationality, sex)] += count
        by_exploitation_age[(nrm_exploitation(category), band)] += count
        by_responder_quarter[(responder, quarter)] += count
    nationalities = sorted(shown) + (["other"] if len(top) > TOP_NATIONALITIES else [])
    tables = [
        _table(
            "referrals_by_quarter_and_age", "Referrals by quarter and age band",
            "quarter", "age_band", by_quarter_age, quarters, AGE_BANDS,
            link="ref", row_link="quarter", column_link="age",
        ),
        _table(
            "referrals_by_nationality_and_sex", "Referrals by nationality and sex",
            "nationality", "sex", by_nationality_sex, nationalities, SEXES,
            link="ref", row_link="nationality", column_link="sex",
        ),
        _table(
            "referrals_by_exploitation_and_age", "Referrals by exploitation type and age band",
            "exploitation_type", "age_band", by_exploitation_age, NRM_EXPLOITATION, AGE_BANDS,
            link="ref", row_link="exploitation", column_link="age",
        ),
        _table(
            "referrals_by_first_responder_and_quarter",
            "Referrals by first responder type and quarter",
            "first_responder_type", "quarter", by_responder_quarter, FIRST_RESPONDERS, quarters,
            link="ref", row_link="first_responder", column_link="quarter",
        ),
        _table(
            "reasonable_grounds_decisions_by_outcome_and_age",
            "Reasonable-grounds decisions by outcome and age band",
            "outcome", "age_band", rg, ("positive", "negative"), AGE_BANDS,
            link="rg", row_link="outcome", column_link="age",
        ),
        _table(
            "conclusive_decisions_by_outcome_and_age",
            "Conclusive (identification) decisions by outcome and age band",
            "outcome", "age_band", cg, ("positive", "negative"), AGE_BANDS,
            link="cg", row_link="outcome", column_link="age",
        ),
    ]  # fmt: skip
    return suppress(tables, k)


# --------------------------------------------------------------------------- Eurostat


def eurostat_tables(
    session: Session, ctx: AppContext, f: Filters, *, k: int
) -> list[PublishedTable]:
    columns = (
        E.detected_year,
        E.country_profile,
        E.nationality,
        E.sex,
        E.age_band,
        E.exploitation_category,
    )
    stmt = (
        select(*columns, func.count())
        .where(*dimension_conditions(f), *detection_period(f))
        .group_by(*columns)
    )
    by_year: dict[int, list[Any]] = {}
    for row in execute(session, stmt):
        by_year.setdefault(row.detected_year, []).append(row)
    forms = sorted(
        {r.exploitation_category for rows in by_year.values() for r in rows} | {"labour", "sexual"}
    )
    tables: list[CountTable] = []
    for year in sorted(by_year):
        rows = by_year[year]
        citizenship: Counter[tuple[str, str]] = Counter()
        exploitation: Counter[tuple[str, str]] = Counter()
        age: Counter[tuple[str, str]] = Counter()
        for r in rows:
            profile = ctx.profiles.get(r.country_profile)
            country = profile.country if profile else ""
            n = int(r[-1])
            citizenship[(citizenship_group(r.nationality, country), r.sex)] += n
            exploitation[(r.exploitation_category, r.sex)] += n
            age[(r.age_band, r.sex)] += n
        link = f"eu{year}"
        tables += [
            _table(
                f"victims_{year}_by_citizenship_and_sex",
                f"Registered victims {year} by citizenship and sex",
                "citizenship", "sex", citizenship, CITIZENSHIP_GROUPS, SEXES,
                link=link, row_link="citizenship", column_link="sex",
            ),
            _table(
                f"victims_{year}_by_exploitation_and_sex",
                f"Registered victims {year} by form of exploitation and sex",
                "exploitation_form", "sex", exploitation, forms, SEXES,
                link=link, row_link="exploitation", column_link="sex",
            ),
            _table(
                f"victims_{year}_by_age_and_sex",
                f"Registered victims {year} by age band and sex",
                "age_band", "sex", age, AGE_BANDS, SEXES,
                link=link, row_link="age", column_link="sex",
            ),
        ]  # fmt: skip
    return suppress(tables, k)


# --------------------------------------------------------------------------- CTDC records

_FORCED_LABOUR = frozenset({"labour", "domestic_servitude"})
_SEXUAL = frozenset({"sexual"})
_GENDER = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}
_AGE_BROAD = {"child": "0--17", "adult": "18+", "unknown": "Unknown"}
_RESPONDER_GROUP = {
    "police": "LawEnforcement",
    "border_guard": "LawEnforcement",
    "labour_inspection": "LawEnforcement",
    "ngo": "CivilSociety",
    "self_referral": "CivilSociety",
    "social_services": "PublicServices",
    "health": "PublicServices",
    "consulate": "PublicServices",
    "carrier": "Other",
    "other": "Other",
}
QUASI_IDENTIFIERS = (
    hierarchy("yearOfRegistration", lambda y: f"{int(y) // 5 * 5}-{int(y) // 5 * 5 + 4}"),
    hierarchy("gender"),
    hierarchy("ageBroad"),
    hierarchy("citizenship", region_of),
    hierarchy("isForcedLabour"),
    hierarchy("isSexualExploit"),
    hierarchy("isOtherExploit"),
    hierarchy("firstResponderType", lambda t: _RESPONDER_GROUP.get(str(t), "Other")),
)
RECORD_FIELDS = (
    "yearOfRegistration",
    "gender",
    "ageBroad",
    "citizenship",
    "isForcedLabour",
    "isSexualExploit",
    "isOtherExploit",
    "firstResponderType",
    "caseStatus",
    "traffickingStatus",
)


def _case_status(stage: str, closure_reason: str | None) -> str:
    if stage == "closed":
        return "ClosedReferred" if closure_reason == "transferred_to_other_country" else "Closed"
    if stage == "returned_handed_over":
        return "ClosedReferred"
    if stage == "reintegration_monitoring":
        return "FollowUp"
    return "Active"


def _trafficking_status(identified: bool, stage: str, closure_reason: str | None) -> str:
    if identified:
        return "Actual"
    if stage in ("not_identified", "reconsideration") or (
        closure_reason == "not_identified_no_reconsideration"
    ):
        return "NotAVictim"
    return "Possible"


def ctdc_records(session: Session, ctx: AppContext, f: Filters, *, k: int) -> dict[str, Any]:
    identified = E.identified_at.is_not(None).label("identified")
    columns = (
        E.detected_year,
        E.sex,
        E.age_band,
        E.nationality,
        E.exploitation_forms,
        E.detecting_org_type,
        E.stage,
        E.closure_reason,
    )
    stmt = (
        select(*columns, identified, func.count())
        .where(*dimension_conditions(f), *detection_period(f))
        .group_by(*columns, identified)
    )
    raw: list[dict[str, Any]] = []
    for row in execute(session, stmt):
        forms = {x for x in (row.exploitation_forms or "").split(",") if x}
        record = {
            "yearOfRegistration": str(row.detected_year),
            "gender": _GENDER.get(row.sex, "Unknown"),
            "ageBroad": _AGE_BROAD.get(row.age_band, "Unknown"),
            "citizenship": row.nationality or "Unknown",
            "isForcedLabour": "1" if forms & _FORCED_LABOUR else "0",
            "isSexualExploit": "1" if forms & _SEXUAL else "0",
            "isOtherExploit": "1" if forms - _FORCED_LABOUR - _SEXUAL else "0",
            "firstResponderType": row.detecting_org_type,
            "caseStatus": _case_status(row.stage, row.closure_reason),
            "traffickingStatus": _trafficking_status(
                bool(row.identified), row.stage, row.closure_reason
            ),
        }
        raw.extend(dict(record) for _ in range(int(row[-1])))
    result = k_anonymise(raw, QUASI_IDENTIFIERS, k)
    return {
        "quasi_identifiers": [h.field for h in QUASI_IDENTIFIERS],
        "generalisation_levels": result.levels,
        "records_in": len(raw),
        "records_suppressed": result.suppressed,
        "records": [{name: r[name] for name in RECORD_FIELDS} for r in result.records],
    }


# --------------------------------------------------------------------------- rendering


def tables_csv(tables: Iterable[PublishedTable]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["table", "row_dimension", "row", "column_dimension", "column", "value", "status"]
    )
    for t in tables:

        def emit(row: str, column: str, value: int | None, t: PublishedTable = t) -> None:
            writer.writerow(
                [t.name, t.row_dimension, row, t.column_dimension, column,
                 "" if value is None else value, "suppressed" if value is None else ""]
            )  # fmt: skip

        for i, label in enumerate(t.rows):
            for j, column in enumerate(t.columns):
                emit(label, column, t.cells[i][j])
            emit(label, "Total", t.row_totals[i])
        for j, column in enumerate(t.columns):
            emit("Total", column, t.column_totals[j])
        emit("Total", "Total", t.grand_total)
    return out.getvalue()


def records_csv(records: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(RECORD_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def build_export(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    kind: str,
    fmt: str,
    f: Filters,
    *,
    k: int | None = None,
    now: datetime | None = None,
) -> tuple[str, str, str]:
    """Compute, render and audit one export: (content, media type, file name)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown export {kind!r}; choose one of {', '.join(KINDS)}")
    if fmt not in ("csv", "json"):
        raise InvalidInput("format must be csv or json")
    level = check_k(kind, k)
    moment = now or utcnow()
    refresh(session, ctx, now=moment)
    header = {
        "kind": kind,
        "k": level,
        "generated_at": moment.isoformat(),
        "filters": f.as_params(),
        "basis": "quarter of referral / of decision"
        if kind == "nrm_quarterly"
        else "year of detection (registration)",
    }
    if kind == "ctdc_records":
        body = ctdc_records(session, ctx, f, k=level)
        rows = len(body["records"])
        content = (
            records_csv(body["records"])
            if fmt == "csv"
            else json.dumps({**header, **body}, ensure_ascii=False, indent=1)
        )
    else:
        tables = (nrm_tables if kind == "nrm_quarterly" else eurostat_tables)(
            session, ctx, f, k=level
        )
        rows = sum((len(t.rows) + 1) * (len(t.columns) + 1) for t in tables)
        content = (
            tables_csv(tables)
            if fmt == "csv"
            else json.dumps(
                {**header, "tables": [t.as_dict() for t in tables]}, ensure_ascii=False, indent=1
            )
        )
    audit.record(
        session,
        actor,
        "statistics_exported",
        details={"kind": kind, "k": level, "rows": rows, "format": fmt},
    )
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    stamp = moment.strftime("%Y%m%d")
    return content, media, f"passage-{kind}-{stamp}.{fmt}"
