"""Referral-timeline indicators for the coordinator audit (domain standards 8(b)).

Every figure is computed from the reporting store (``app.reporting.store``), which is
derived from the hash-chained audit timeline, never from the mutable milestone columns of
the case row. Filters and breakdowns use the case's clear statistical projection only.

Counting rules shared by every indicator:

* A *duration* is measured only for episodes that reached both ends; episodes still
  waiting are never given a duration, they are counted as *pending* (open, not closed,
  not re-opened by a re-trafficking report) and, where it matters, by how long they have
  been waiting as of ``now``.
* Medians and P90 are ``percentile_cont`` (linear interpolation between ranks, as
  PostgreSQL's ``percentile_cont`` and numpy's default), computed exactly from the
  distribution of integer values.
* Percentages are rounded to one decimal; a percentage with an empty denominator is
  ``None`` (shown as a dash), never 0 or 100.
* Period filtering: with ``basis="detection"`` an episode belongs to the period of its
  detection date and every indicator counts the same episodes; with ``basis="event"`` each
  figure counts the events that happened in the period (referrals made, decisions taken,
  returns completed...), anchored on the event that ends the measured interval.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from app.agencies.models import Agency
from app.audit.models import AuditEvent
from app.auth.break_glass import BreakGlassGrant
from app.context import AppContext
from app.db.base import utcnow
from app.errors import InvalidInput
from app.reporting.models import episodes, open_deadlines
from app.reporting.store import execute, refresh
from app.reporting.timeline import follow_up_checkpoints_due
from app.vocab import AgeBand, DetectingOrganisationType, ExploitationForm, Sex

E = episodes.c
Basis = Literal["detection", "event"]

GROUP_DIMENSIONS: dict[str, Any] = {
    "country_profile": E.country_profile,
    "agency": E.owning_agency_id,
    "region": E.region,
    "nationality": E.nationality,
    "sex": E.sex,
    "age_band": E.age_band,
    "exploitation": E.exploitation_category,
    "detecting_org_type": E.detecting_org_type,
    "year": E.detected_year,
    "quarter": E.detected_quarter,
    "month": E.detected_month,
}

_PERIOD_RE = re.compile(r"^(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$")


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the coordinator asked for; every field maps to a query parameter."""

    date_from: date | None = None
    date_to: date | None = None  # exclusive
    basis: Basis = "detection"
    country_profile: str | None = None
    agency_id: uuid.UUID | None = None
    region: str | None = None
    nationality: str | None = None
    sex: str | None = None
    age_band: str | None = None
    exploitation_form: str | None = None
    detecting_org_type: str | None = None
    period: str | None = None

    def as_params(self) -> dict[str, str]:
        """Query parameters that reproduce these filters (for links that keep state)."""
        out: dict[str, str] = {}
        if self.period:
            out["period"] = self.period
        else:
            if self.date_from:
                out["from"] = self.date_from.isoformat()
            if self.date_to:
                out["to"] = (self.date_to - timedelta(days=1)).isoformat()
        if self.basis != "detection":
            out["basis"] = self.basis
        for key in (
            "country_profile",
            "region",
            "nationality",
            "sex",
            "age_band",
            "exploitation_form",
            "detecting_org_type",
        ):
            value = getattr(self, key)
            if value:
                out[key] = str(value)
        if self.agency_id:
            out["agency_id"] = str(self.agency_id)
        return out

    @property
    def has_dimensions(self) -> bool:
        return any(
            (
                self.country_profile,
                self.agency_id,
                self.region,
                self.nationality,
                self.sex,
                self.age_band,
                self.exploitation_form,
                self.detecting_org_type,
            )
        )


def period_range(value: str) -> tuple[date, date]:
    """``2026`` / ``2026-Q3`` / ``2026-07`` -> [first day, first day after)."""
    match = _PERIOD_RE.match(value.strip())
    if match is None:
        raise InvalidInput("period must look like 2026, 2026-Q3 or 2026-07")
    year = int(match["year"])
    if match["quarter"]:
        first_month = (int(match["quarter"]) - 1) * 3 + 1
        start = date(year, first_month, 1)
        end = date(year + (first_month + 3 > 12), (first_month + 2) % 12 + 1, 1)
    elif match["month"]:
        month = int(match["month"])
        start = date(year, month, 1)
        end = date(year + (month == 12), month % 12 + 1, 1)
    else:
        start, end = date(year, 1, 1), date(year + 1, 1, 1)
    return start, end


def make_filters(
    ctx: AppContext,
    *,
    period: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    basis: str = "detection",
    country_profile: str | None = None,
    agency_id: uuid.UUID | None = None,
    region: str | None = None,
    nationality: str | None = None,
    sex: str | None = None,
    age_band: str | None = None,
    exploitation_form: str | None = None,
    detecting_org_type: str | None = None,
) -> Filters:
    """Validate raw query values against the vocabularies; refuse anything unknown."""

    def clean(value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    def one_of(name: str, value: str | None, allowed: Iterable[str]) -> str | None:
        value = clean(value)
        if value is not None and value not in set(allowed):
            raise InvalidInput(f"unknown {name.replace('_', ' ')} {value!r}")
        return value

    if basis not in ("detection", "event"):
        raise InvalidInput("basis must be detection or event")
    start, end = date_from, (date_to + timedelta(days=1)) if date_to else None
    period = clean(period)
    if period:
        start, end = period_range(period)
    if start and end and end <= start:
        raise InvalidInput("the period ends before it starts")
    nat = clean(nationality)
    if nat is not None:
        nat = nat.upper()
        if not re.fullmatch(r"[A-Z]{2}", nat):
            raise InvalidInput("nationality must be an ISO 3166-1 alpha-2 code")
    region_value = clean(region)
    if region_value is not None and len(region_value) > 100:
        raise InvalidInput("region is too long")
    return Filters(
        date_from=start,
        date_to=end,
        basis="event" if basis == "event" else "detection",
        country_profile=one_of("country_profile", country_profile, ctx.profiles),
        agency_id=agency_id,
        region=region_value,
        nationality=nat,
        sex=one_of("sex", sex, [s.value for s in Sex]),
        age_band=one_of("age_band", age_band, [a.value for a in AgeBand]),
        exploitation_form=one_of(
            "exploitation_form", exploitation_form, [f.value for f in ExploitationForm]
        ),
        detecting_org_type=one_of(
            "detecting_org_type",
            detecting_org_type,
            [d.value for d in DetectingOrganisationType],
        ),
        period=period,
    )


def dimension_conditions(f: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.country_profile:
        conds.append(E.country_profile == f.country_profile)
    if f.agency_id:
        conds.append(E.owning_agency_id == f.agency_id)
    if f.region:
        conds.append(E.region == f.region)
    if f.nationality:
        conds.append(E.nationality == f.nationality)
    if f.sex:
        conds.append(E.sex == f.sex)
    if f.age_band:
        conds.append(E.age_band == f.age_band)
    if f.exploitation_form:  # validated against the vocabulary: no LIKE wildcards
        conds.append(E.exploitation_forms.like(f"%,{f.exploitation_form},%"))
    if f.detecting_org_type:
        conds.append(E.detecting_org_type == f.detecting_org_type)
    return conds


def _bounds(f: Filters) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(f.date_from, time.min, tzinfo=UTC) if f.date_from else None
    end = datetime.combine(f.date_to, time.min, tzinfo=UTC) if f.date_to else None
    return start, end


def detection_period(f: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.date_from:
        conds.append(E.detected_on >= f.date_from)
    if f.date_to:
        conds.append(E.detected_on < f.date_to)
    return conds


def anchored(f: Filters, anchor: Any) -> ColumnElement[bool]:
    """The period condition of one figure (always true on the detection basis)."""
    if f.basis != "event" or (f.date_from is None and f.date_to is None):
        return true()
    start, end = _bounds(f)
    conds: list[ColumnElement[bool]] = []
    if start is not None:
        conds.append(anchor >= start)
    if end is not None:
        conds.append(anchor < end)
    return and_(*conds)


def base_conditions(f: Filters) -> list[ColumnElement[bool]]:
    conds = dimension_conditions(f)
    if f.basis == "detection":
        conds.extend(detection_period(f))
    return conds


# --------------------------------------------------------------------------- specs


OPEN = and_(E.closed_at.is_(None), E.re_trafficked_at.is_(None))


@dataclass(frozen=True)
class Count:
    """A counted set of episodes (or a summed column), anchored on one event for periods."""

    name: str
    condition: Callable[[datetime], ColumnElement[bool]]
    anchor: Any
    label: str
    sum_of: Any = None


def _c(
    name: str,
    label: str,
    condition: Callable[[datetime], ColumnElement[bool]],
    anchor: Any,
    sum_of: Any = None,
) -> Count:
    return Count(name, condition, anchor, label, sum_of)


def _pending_id(now: datetime) -> ColumnElement[bool]:
    return and_(
        E.reflection_started_at.is_not(None),
        E.id_decided_at.is_(None),
        E.returned_at.is_(None),
        OPEN,
    )


def _pending_rg(now: datetime) -> ColumnElement[bool]:
    return and_(E.referred_at.is_not(None), E.rg_decided_at.is_(None), OPEN)


COUNTS: tuple[Count, ...] = (
    _c("episodes", "Episodes registered", lambda n: true(), E.registered_at),
    _c(
        "re_trafficking_episodes",
        "Re-opened episodes (after re-trafficking)",
        lambda n: E.episode > 1,
        E.registered_at,
    ),
    _c(
        "screened",
        "Presumed victims (screened)",
        lambda n: E.screened_at.is_not(None),
        E.screened_at,
    ),
    _c(
        "declined",
        "Declined formal identification",
        lambda n: E.declined_at.is_not(None),
        E.declined_at,
    ),
    _c("referred", "Referred", lambda n: E.referred_at.is_not(None), E.referred_at),
    _c(
        "referral_late",
        "Referred later than the target",
        lambda n: E.referral_on_time.is_(False),
        E.referred_at,
    ),
    _c(
        "referral_on_time",
        "Referred within the target",
        lambda n: E.referral_on_time.is_(True),
        E.referred_at,
    ),
    _c(
        "referral_pending",
        "Awaiting referral",
        lambda n: and_(E.referred_at.is_(None), E.declined_at.is_(None), OPEN),
        E.registered_at,
    ),
    _c(
        "rg_decided",
        "Reasonable-grounds decisions",
        lambda n: E.rg_decided_at.is_not(None),
        E.rg_decided_at,
    ),
    _c(
        "rg_positive",
        "Positive reasonable-grounds decisions",
        lambda n: E.rg_positive.is_(True),
        E.rg_decided_at,
    ),
    _c(
        "rg_negative",
        "Negative reasonable-grounds decisions",
        lambda n: E.rg_positive.is_(False),
        E.rg_decided_at,
    ),
    _c(
        "rg_on_time",
        "Reasonable-grounds decisions on target",
        lambda n: E.rg_on_time.is_(True),
        E.rg_decided_at,
    ),
    _c(
        "rg_late",
        "Reasonable-grounds decisions after the target",
        lambda n: E.rg_on_time.is_(False),
        E.rg_decided_at,
    ),
    _c("rg_pending", "Awaiting a reasonable-grounds decision", _pending_rg, E.referred_at),
    _c(
        "rg_pending_overdue",
        "Awaiting a reasonable-grounds decision past the target",
        lambda n: and_(_pending_rg(n), E.rg_due_at < n),
        E.referred_at,
    ),
    _c(
        "reflection_started",
        "Recovery and reflection periods started",
        lambda n: E.reflection_started_at.is_not(None),
        E.reflection_started_at,
    ),
    _c(
        "contact_made",
        "First support contact made",
        lambda n: E.first_contact_at.is_not(None),
        E.reflection_started_at,
    ),
    _c(
        "contact_on_time",
        "First support contact within the target",
        lambda n: E.contact_on_time.is_(True),
        E.reflection_started_at,
    ),
    _c(
        "contact_late",
        "First support contact after the target",
        lambda n: E.contact_on_time.is_(False),
        E.reflection_started_at,
    ),
    _c(
        "contact_missing_overdue",
        "No support contact yet, target passed",
        lambda n: and_(
            E.reflection_started_at.is_not(None), E.first_contact_at.is_(None), E.contact_due_at < n
        ),
        E.reflection_started_at,
    ),
    _c(
        "reflection_running",
        "Minimum reflection period still running",
        lambda n: and_(
            E.reflection_started_at.is_not(None),
            E.reflection_cut_at.is_(None),
            E.reflection_min_end_at >= n,
        ),
        E.reflection_started_at,
    ),
    _c(
        "reflection_compliant",
        "Minimum reflection period fully granted",
        lambda n: and_(
            E.reflection_started_at.is_not(None),
            or_(
                and_(E.reflection_cut_at.is_(None), E.reflection_min_end_at < n),
                E.reflection_cut_at > E.reflection_min_end_at,
            ),
        ),
        E.reflection_started_at,
    ),
    _c(
        "reflection_breached",
        "Decision or exit before the minimum reflection period ended",
        lambda n: and_(
            E.reflection_cut_at.is_not(None), E.reflection_cut_at <= E.reflection_min_end_at
        ),
        E.reflection_started_at,
    ),
    _c(
        "enforcement_episodes",
        "Episodes with enforcement or transfer events during reflection",
        lambda n: E.enforcement_in_reflection > 0,
        E.reflection_started_at,
    ),
    _c(
        "id_decided",
        "Identification decisions",
        lambda n: E.id_decided_at.is_not(None),
        E.id_decided_at,
    ),
    _c(
        "id_positive",
        "Positive identification decisions",
        lambda n: E.id_positive.is_(True),
        E.id_decided_at,
    ),
    _c(
        "id_negative",
        "Negative identification decisions",
        lambda n: E.id_positive.is_(False),
        E.id_decided_at,
    ),
    _c(
        "id_over_90",
        "Decided more than 90 days after reasonable grounds",
        lambda n: E.id_days > 90,
        E.id_decided_at,
    ),
    _c(
        "id_over_180",
        "Decided more than 180 days after reasonable grounds",
        lambda n: E.id_days > 180,
        E.id_decided_at,
    ),
    _c(
        "id_over_365",
        "Decided more than 365 days after reasonable grounds",
        lambda n: E.id_days > 365,
        E.id_decided_at,
    ),
    _c(
        "id_before_min",
        "Decided before the minimum reflection period ended",
        lambda n: E.id_before_min.is_(True),
        E.id_decided_at,
    ),
    _c(
        "id_before_min_gated",
        "Decided before the minimum where the profile forbids it",
        lambda n: and_(E.id_before_min.is_(True), E.reflection_gated.is_(True)),
        E.id_decided_at,
    ),
    _c("id_pending", "Awaiting an identification decision", _pending_id, E.reflection_started_at),
    _c(
        "id_pending_over_90",
        "Awaiting an identification decision for more than 90 days",
        lambda n: and_(_pending_id(n), E.reflection_started_at < n - timedelta(days=90)),
        E.reflection_started_at,
    ),
    _c(
        "id_pending_over_180",
        "Awaiting an identification decision for more than 180 days",
        lambda n: and_(_pending_id(n), E.reflection_started_at < n - timedelta(days=180)),
        E.reflection_started_at,
    ),
    _c(
        "id_pending_over_365",
        "Awaiting an identification decision for more than 365 days",
        lambda n: and_(_pending_id(n), E.reflection_started_at < n - timedelta(days=365)),
        E.reflection_started_at,
    ),
    _c(
        "identified",
        "Identified as victims",
        lambda n: E.identified_at.is_not(None),
        E.identified_at,
    ),
    _c("children", "Registered as children", lambda n: E.age_band == "child", E.registered_at),
    _c(
        "age_unknown",
        "Registered with age unknown",
        lambda n: E.age_band == "unknown",
        E.registered_at,
    ),
    _c(
        "guardian_assigned",
        "Guardians assigned",
        lambda n: E.guardian_hours.is_not(None),
        E.guardian_assigned_at,
    ),
    _c(
        "guardian_within_24h",
        "Guardians assigned within 24 hours",
        lambda n: E.guardian_hours <= 24,
        E.guardian_assigned_at,
    ),
    _c(
        "guardian_pending",
        "Children with no guardian assigned yet",
        lambda n: and_(
            E.episode == 1, E.age_band != "adult", E.guardian_assigned_at.is_(None), OPEN
        ),
        E.registered_at,
    ),
    _c(
        "not_adult_referred",
        "Children or age-unknown persons referred",
        lambda n: and_(E.age_band != "adult", E.referred_at.is_not(None)),
        E.referred_at,
    ),
    _c(
        "not_adult_child_pathway",
        "... on the child pathway (guardian requested first)",
        lambda n: and_(E.age_band != "adult", E.child_pathway.is_(True)),
        E.referred_at,
    ),
    _c(
        "missing_child_episodes",
        "Episodes with a missing-child report",
        lambda n: E.missing_child_reports > 0,
        E.registered_at,
    ),
    _c(
        "missing_child_open",
        "Children still missing",
        lambda n: E.missing_child_open.is_(True),
        E.registered_at,
    ),
    _c(
        "lost_contact_episodes",
        "Episodes with lost contact",
        lambda n: E.lost_contact_reports > 0,
        E.registered_at,
    ),
    _c(
        "referral_consent",
        "Referrals with a referral consent on record",
        lambda n: E.referral_consent.is_(True),
        E.referred_at,
    ),
    _c(
        "referral_child_exempt",
        "Referrals of children without consent (exempt)",
        lambda n: and_(E.referral_consent.is_not(True), E.child_pathway.is_(True)),
        E.referred_at,
    ),
    _c(
        "referral_consent_complete",
        "Referrals with consent or child exemption",
        lambda n: or_(E.referral_consent.is_(True), E.child_pathway.is_(True)),
        E.referred_at,
    ),
    _c(
        "referral_consent_missing",
        "Referrals with neither consent nor child exemption",
        lambda n: and_(
            E.referred_at.is_not(None),
            E.referral_consent.is_not(True),
            E.child_pathway.is_not(True),
        ),
        E.referred_at,
    ),
    _c(
        "negative_episodes",
        "Episodes with a negative decision",
        lambda n: E.negatives > 0,
        E.negative_at,
    ),
    _c(
        "reconsideration_requested",
        "Reconsiderations requested",
        lambda n: E.reconsideration_at.is_not(None),
        E.reconsideration_at,
    ),
    _c(
        "reconsideration_in_window",
        "Reconsiderations requested within the window",
        lambda n: E.reconsideration_in_window.is_(True),
        E.reconsideration_at,
    ),
    _c(
        "reconsideration_upheld",
        "Reconsiderations upheld (negative confirmed)",
        lambda n: E.reconsideration_outcome == "upheld",
        E.reconsideration_at,
    ),
    _c(
        "reconsideration_overturned",
        "Reconsiderations overturned",
        lambda n: E.reconsideration_outcome == "overturned",
        E.reconsideration_at,
    ),
    _c(
        "reconsideration_pending",
        "Reconsiderations awaiting a decision",
        lambda n: and_(
            E.reconsideration_at.is_not(None), E.reconsideration_outcome.is_(None), OPEN
        ),
        E.reconsideration_at,
    ),
    _c(
        "return_requested",
        "Returns requested",
        lambda n: E.return_requested_at.is_not(None),
        E.return_requested_at,
    ),
    _c(
        "returned",
        "Returns completed (handed over)",
        lambda n: E.returned_at.is_not(None),
        E.returned_at,
    ),
    _c(
        "return_risk_assessed",
        "... with a joint pre-return risk assessment",
        lambda n: E.return_risk_assessed.is_(True),
        E.returned_at,
    ),
    _c(
        "return_voluntary",
        "... with a recorded voluntary return consent",
        lambda n: E.return_voluntary.is_(True),
        E.returned_at,
    ),
    _c(
        "return_receiving_org",
        "... with a confirmed receiving organisation",
        lambda n: E.return_receiving_org.is_(True),
        E.returned_at,
    ),
    _c(
        "return_data_consent",
        "... with consent to transfer case data",
        lambda n: E.return_data_consent.is_(True),
        E.returned_at,
    ),
    _c(
        "return_child_without_bia",
        "Child returns without a best-interests assessment",
        lambda n: E.return_child_without_bia.is_(True),
        E.returned_at,
    ),
    _c(
        "reintegration",
        "Reintegration monitoring started",
        lambda n: E.reintegration_at.is_not(None),
        E.reintegration_at,
    ),
    _c(
        "re_trafficked",
        "Re-trafficking reports",
        lambda n: E.re_trafficked_at.is_not(None),
        E.re_trafficked_at,
    ),
    _c("closed", "Episodes closed", lambda n: E.closed_at.is_not(None), E.closed_at),
    _c(
        "support_started",
        "Long-term support started",
        lambda n: E.support_started_at.is_not(None),
        E.support_started_at,
    ),
    # sums of per-episode counters
    _c(
        "enforcement_events",
        "Enforcement or transfer events during reflection",
        lambda n: true(),
        E.reflection_started_at,
        E.enforcement_in_reflection,
    ),
    _c(
        "assistance_refusals",
        "Assistance suspended or refused events",
        lambda n: true(),
        E.registered_at,
        E.assistance_refusals,
    ),
    _c(
        "consent_withdrawals",
        "Consents withdrawn",
        lambda n: true(),
        E.registered_at,
        E.consent_withdrawals,
    ),
    _c(
        "missing_child_reports",
        "Missing-child reports",
        lambda n: true(),
        E.registered_at,
        E.missing_child_reports,
    ),
    _c("negative_decisions", "Negative decisions", lambda n: true(), E.negative_at, E.negatives),
    _c(
        "negatives_second_reviewed",
        "Negative decisions confirmed by a second reviewer",
        lambda n: true(),
        E.negative_at,
        E.negatives_second_reviewed,
    ),
    _c(
        "returns_cancelled",
        "Return plans cancelled",
        lambda n: true(),
        E.return_requested_at,
        E.returns_cancelled,
    ),
)
COUNT_BY_NAME = {c.name: c for c in COUNTS}


@dataclass(frozen=True)
class Duration:
    name: str
    column: Any
    anchor: Any
    unit: str


DURATIONS: tuple[Duration, ...] = (
    Duration("referral_days", E.referral_days, E.referred_at, "days"),
    Duration("rg_working_days", E.rg_working_days, E.rg_decided_at, "working days"),
    Duration("contact_hours", E.contact_hours, E.reflection_started_at, "hours"),
    Duration("id_days", E.id_days, E.id_decided_at, "days"),
    Duration("guardian_hours", E.guardian_hours, E.guardian_assigned_at, "hours"),
    Duration("return_days", E.return_days, E.returned_at, "days"),
)


# --------------------------------------------------------------------------- statistics


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """``percentile_cont(p)`` of the values described by ``{value: count}``."""
    items = sorted((v, n) for v, n in histogram.items() if n > 0)
    total = sum(n for _, n in items)
    if total == 0:
        return None
    position = p * (total - 1)
    low_rank, high_rank = math.floor(position), math.ceil(position)

    def value_at(rank: int) -> int:
        seen = 0
        for value, count in items:
            seen += count
            if rank < seen:
                return value
        return items[-1][0]

    low, high = value_at(low_rank), value_at(high_rank)
    return round(low + (high - low) * (position - low_rank), 2)


def pct(part: int | None, whole: int | None) -> float | None:
    if not whole:
        return None
    return round(100.0 * (part or 0) / whole, 1)


def ratio(part: int | None, whole: int | None) -> float | None:
    if not whole:
        return None
    return round((part or 0) / whole, 3)


# --------------------------------------------------------------------------- computation


@dataclass
class GroupFigures:
    counts: dict[str, int] = field(default_factory=dict)
    # SQLite: {value: count} per duration, percentiles taken in Python.
    histograms: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    # PostgreSQL: (n, median, p90) per duration, computed by the counting pass itself.
    distributions: dict[str, tuple[int, float | None, float | None]] = field(default_factory=dict)
    follow_ups: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The stage funnel (detection basis), when asked for with the counts (the dashboard).
    funnel_reached: dict[str, int] | None = None
    current_stages: dict[str, int] | None = None


def _group_expr(group_by: str | None) -> Any:
    if group_by is None:
        return literal("all")
    if group_by not in GROUP_DIMENSIONS:
        raise InvalidInput(f"group_by must be one of: {', '.join(sorted(GROUP_DIMENSIONS))}")
    return GROUP_DIMENSIONS[group_by]


def _key(value: Any) -> str:
    if value is None:
        return "unknown"
    return str(value)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _count_columns(f: Filters, now: datetime) -> list[Any]:
    columns: list[Any] = []
    for spec in COUNTS:
        condition = and_(spec.condition(now), anchored(f, spec.anchor))
        if spec.sum_of is not None:
            columns.append(
                func.coalesce(func.sum(case((condition, spec.sum_of), else_=0)), 0).label(spec.name)
            )
        else:
            columns.append(func.count().filter(condition).label(spec.name))
    return columns


def _distribution_columns(f: Filters) -> list[Any]:
    """PostgreSQL: n, median and P90 of every duration, as aggregates of the counting pass.

    ``percentile_cont`` is exactly what ``percentile`` computes from a histogram (same
    interpolation, same float arithmetic); both percentiles of one duration share one sort.
    """
    columns: list[Any] = []
    for d in DURATIONS:
        when = anchored(f, d.anchor)
        columns.append(func.count(d.column).filter(when).label(f"n__{d.name}"))
        for p in (50, 90):
            columns.append(
                func.percentile_cont(p / 100)
                .within_group(d.column)
                .filter(when)
                .label(f"p{p}__{d.name}")
            )
    return columns


def _follow_up_columns(ctx: AppContext, f: Filters, now: datetime) -> list[tuple[int, Any, Any]]:
    """PostgreSQL: (checkpoint, due, reached) aggregates, two per checkpoint.

    Same rule as ``follow_up_checkpoints_due``: a checkpoint is due once the local day of
    the return plus its days has ended, i.e. the return happened before local midnight of
    (today - days) in the profile's time zone. That instant differs per profile, so it is
    picked per row with a CASE (NULL, never due, for a profile without the checkpoint or
    unknown to this installation). Rows that were never returned stop at the first test.
    """
    cutoffs: dict[int, dict[str, datetime]] = defaultdict(dict)
    for code, profile in ctx.profiles.items():
        tz = profile.calendar.tzinfo
        today = now.astimezone(tz).date()
        for checkpoint in profile.return_follow_up_checkpoints_days:
            day = today - timedelta(days=int(checkpoint))
            cutoffs[int(checkpoint)][code] = datetime.combine(day, time.min, tzinfo=tz)
    out: list[tuple[int, Any, Any]] = []
    for checkpoint, by_profile in sorted(cutoffs.items()):
        cutoff = case(
            *((E.country_profile == code, moment) for code, moment in sorted(by_profile.items())),
            else_=None,
        )
        due = and_(E.returned_at.is_not(None), E.returned_at < cutoff, anchored(f, E.returned_at))
        reached = and_(due, E.follow_ups_reached.like(f"%,{checkpoint},%"))
        out.append(
            (
                checkpoint,
                func.count().filter(due).label(f"fu_due__{checkpoint}"),
                func.count().filter(reached).label(f"fu_reached__{checkpoint}"),
            )
        )
    return out


def _funnel_columns(f: Filters, now: datetime) -> list[Any]:
    """Funnel steps reached and current stages, always on the detection basis.

    ``f`` is the request's filters; on the event basis the pass is not restricted to the
    detection period, so each column carries that restriction itself.
    """
    from app.cases.workflow import Stage

    columns: list[Any] = []
    extra: list[ColumnElement[bool]] = []
    if f.basis == "event":  # on the detection basis the counts of the pass are the steps
        extra = detection_period(f)
        for key, _label in FUNNEL_STEPS:
            reached = and_(COUNT_BY_NAME[key].condition(now), *extra)
            columns.append(func.count().filter(reached).label(f"fr__{key}"))
    for stage in Stage:  # the stage test first: it fails fast for all but one stage
        current = and_(E.stage == stage.value, E.is_current.is_(True), *extra)
        columns.append(func.count().filter(current).label(f"st__{stage.value}"))
    return columns


def _funnel_figures(row: Mapping[str, Any], f: Filters) -> tuple[dict[str, int], dict[str, int]]:
    from app.cases.workflow import Stage

    prefix = "fr__" if f.basis == "event" else ""
    reached = {key: int(row[f"{prefix}{key}"] or 0) for key, _label in FUNNEL_STEPS}
    stages = {stage.value: int(row[f"st__{stage.value}"] or 0) for stage in Stage}
    return reached, stages


def collect(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    now: datetime,
    group_by: str | None = None,
    with_funnel: bool = False,
) -> dict[str, GroupFigures]:
    """Counts, duration distributions and follow-ups (and the funnel), per group value.

    PostgreSQL: one aggregate pass over the store computes every count, every duration's
    n / median / P90, the follow-up checkpoints and, for the dashboard, the funnel. SQLite
    (small installations): counts in one pass, histograms and follow-ups read into Python.
    """
    group = _group_expr(group_by)
    where = base_conditions(f)
    in_sql = _is_postgresql(session)
    columns = _count_columns(f, now)
    follow_ups = _follow_up_columns(ctx, f, now) if in_sql else []
    if in_sql:
        columns += _distribution_columns(f)
        for _checkpoint, due, reached in follow_ups:
            columns += [due, reached]
    if with_funnel:
        columns += _funnel_columns(f, now)
    stmt = select(group.label("g"), *columns).where(*where).group_by(group)
    out: dict[str, GroupFigures] = defaultdict(GroupFigures)
    for row in execute(session, stmt).mappings():
        figures = out[_key(row["g"])]
        figures.counts = {spec.name: int(row[spec.name] or 0) for spec in COUNTS}
        if in_sql:
            figures.distributions = {
                d.name: (
                    int(row[f"n__{d.name}"] or 0),
                    _rounded(row[f"p50__{d.name}"]),
                    _rounded(row[f"p90__{d.name}"]),
                )
                for d in DURATIONS
            }
            tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for checkpoint, due, reached in follow_ups:
                tally[checkpoint][0] += int(row[due.name] or 0)
                tally[checkpoint][1] += int(row[reached.name] or 0)
            figures.follow_ups = {c: (t[0], t[1]) for c, t in sorted(tally.items()) if t[0] > 0}
        if with_funnel:
            figures.funnel_reached, figures.current_stages = _funnel_figures(row, f)
    if not in_sql:
        _collect_in_python(session, ctx, f, now, group, where, out)
    for figures in out.values():
        if not figures.counts:
            figures.counts = {spec.name: 0 for spec in COUNTS}
    return dict(out)


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _collect_in_python(
    session: Session,
    ctx: AppContext,
    f: Filters,
    now: datetime,
    group: Any,
    where: list[ColumnElement[bool]],
    out: dict[str, GroupFigures],
) -> None:
    """SQLite: duration histograms and post-return follow-ups, tallied in Python."""
    for name, g, value, n in _histograms(session, f, group, where):
        out[_key(g)].histograms[name][int(value)] = int(n)
    # Post-return follow-up checkpoints: due ones are final (reached or missed).
    returned = select(
        group.label("g"), E.returned_at, E.country_profile, E.follow_ups_reached
    ).where(*where, E.returned_at.is_not(None), anchored(f, E.returned_at))
    tallies: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for g, returned_at, profile_code, reached in execute(session, returned):
        if profile_code not in ctx.profiles:
            continue
        reached_set = {int(x) for x in (reached or "").split(",") if x}
        for checkpoint in follow_up_checkpoints_due(returned_at, ctx.profile(profile_code), now):
            tally = tallies[_key(g)][checkpoint]
            tally[0] += 1
            tally[1] += checkpoint in reached_set
    for g, by_checkpoint in tallies.items():
        out[g].follow_ups = {c: (t[0], t[1]) for c, t in sorted(by_checkpoint.items())}


def _histograms(
    session: Session, f: Filters, group: Any, where: list[ColumnElement[bool]]
) -> list[tuple[str, Any, int, int]]:
    """(duration, group, value, count) for every duration measure, one query each (SQLite)."""
    out: list[tuple[str, Any, int, int]] = []
    for duration in DURATIONS:
        hist = (
            select(group.label("g"), duration.column.label("v"), func.count().label("n"))
            .where(*where, duration.column.is_not(None), anchored(f, duration.anchor))
            .group_by(group, duration.column)
        )
        out.extend((duration.name, g, int(v), int(n)) for g, v, n in execute(session, hist))
    return out


def _dist(figures: GroupFigures, name: str) -> dict[str, Any]:
    if name in figures.distributions:
        n, median, p90 = figures.distributions[name]
        return {"n": n, "median": median, "p90": p90}
    hist = figures.histograms.get(name, {})
    return {
        "n": sum(hist.values()),
        "median": percentile(hist, 0.5),
        "p90": percentile(hist, 0.9),
    }


def indicator_blocks(figures: GroupFigures) -> list[dict[str, Any]]:
    """The indicator set of domain standards 8(b), from one group's figures."""
    c = figures.counts
    blocks: list[dict[str, Any]] = []

    def block(number: str, key: str, title: str, standard: str, values: dict[str, Any]) -> None:
        blocks.append(
            {"number": number, "id": key, "title": title, "standard": standard, "values": values}
        )

    referral = _dist(figures, "referral_days")
    block(
        "1",
        "detection_to_referral",
        "Detection to referral",
        "Refer as soon as possible; flagged beyond the profile's target (1 day)",
        {
            "referred": c["referred"],
            "median_days": referral["median"],
            "p90_days": referral["p90"],
            "on_time": c["referral_on_time"],
            "on_time_pct": pct(c["referral_on_time"], c["referred"]),
            "late": c["referral_late"],
            "pending": c["referral_pending"],
            "declined": c["declined"],
        },
    )
    rg = _dist(figures, "rg_working_days")
    block(
        "2",
        "referral_to_reasonable_grounds",
        "Referral to reasonable-grounds decision",
        "Within the profile's working-day target (UK: 5 working days)",
        {
            "decided": c["rg_decided"],
            "positive": c["rg_positive"],
            "negative": c["rg_negative"],
            "median_working_days": rg["median"],
            "p90_working_days": rg["p90"],
            "on_target": c["rg_on_time"],
            "on_target_pct": pct(c["rg_on_time"], c["rg_decided"]),
            "late": c["rg_late"],
            "pending": c["rg_pending"],
            "pending_past_target": c["rg_pending_overdue"],
        },
    )
    contact = _dist(figures, "contact_hours")
    due_contacts = c["contact_made"] + c["contact_missing_overdue"]
    block(
        "3",
        "rg_to_first_support_contact",
        "Reasonable grounds to first support contact",
        "Within the profile's target (48 hours)",
        {
            "reflection_started": c["reflection_started"],
            "contacted": c["contact_made"],
            "median_hours": contact["median"],
            "p90_hours": contact["p90"],
            "on_time": c["contact_on_time"],
            "on_time_pct": pct(c["contact_on_time"], due_contacts),
            "late": c["contact_late"],
            "no_contact_past_target": c["contact_missing_overdue"],
        },
    )
    settled = c["reflection_compliant"] + c["reflection_breached"]
    block(
        "4",
        "reflection_compliance",
        "Recovery and reflection period",
        "Minimum period granted in full before any decision or exit; 0 enforcement events",
        {
            "started": c["reflection_started"],
            "running": c["reflection_running"],
            "granted_in_full": c["reflection_compliant"],
            "cut_short": c["reflection_breached"],
            "granted_in_full_pct": pct(c["reflection_compliant"], settled),
            "enforcement_events": c["enforcement_events"],
            "episodes_with_enforcement": c["enforcement_episodes"],
        },
    )
    ident = _dist(figures, "id_days")
    block(
        "5",
        "rg_to_identification",
        "Reasonable grounds to identification decision",
        "None before the minimum reflection period; UK 2023 median baseline 526 days",
        {
            "decided": c["id_decided"],
            "positive": c["id_positive"],
            "negative": c["id_negative"],
            "median_days": ident["median"],
            "p90_days": ident["p90"],
            "over_90_pct": pct(c["id_over_90"], c["id_decided"]),
            "over_180_pct": pct(c["id_over_180"], c["id_decided"]),
            "over_365_pct": pct(c["id_over_365"], c["id_decided"]),
            "before_minimum": c["id_before_min"],
            "before_minimum_where_forbidden": c["id_before_min_gated"],
            "pending": c["id_pending"],
            "pending_over_90": c["id_pending_over_90"],
            "pending_over_180": c["id_pending_over_180"],
            "pending_over_365": c["id_pending_over_365"],
        },
    )
    block(
        "6",
        "assistance_conditionality",
        "Assistance suspended for non-cooperation",
        "0 (assistance is never conditional on cooperation)",
        {"events": c["assistance_refusals"]},
    )
    guardian = _dist(figures, "guardian_hours")
    block(
        "7",
        "children",
        "Children",
        "Guardian without delay; age-uncertain persons treated as children; missing children",
        {
            "registered_as_child": c["children"],
            "registered_age_unknown": c["age_unknown"],
            "guardians_assigned": c["guardian_assigned"],
            "median_hours_to_guardian": guardian["median"],
            "p90_hours_to_guardian": guardian["p90"],
            "within_24h_pct": pct(c["guardian_within_24h"], c["guardian_assigned"]),
            "awaiting_guardian": c["guardian_pending"],
            "not_adult_referred": c["not_adult_referred"],
            "treated_as_children_pct": pct(c["not_adult_child_pathway"], c["not_adult_referred"]),
            "missing_child_reports": c["missing_child_reports"],
            "episodes_with_missing_child": c["missing_child_episodes"],
            "still_missing": c["missing_child_open"],
        },
    )
    block(
        "8",
        "consent_completeness",
        "Consent completeness",
        "100% of referrals with consent (or child exemption); 100% of transfers",
        {
            "referrals": c["referred"],
            "with_referral_consent": c["referral_consent"],
            "child_exemptions": c["referral_child_exempt"],
            "complete_pct": pct(c["referral_consent_complete"], c["referred"]),
            "missing": c["referral_consent_missing"],
            "returns": c["returned"],
            "returns_with_data_transfer_consent_pct": pct(c["return_data_consent"], c["returned"]),
            "withdrawals": c["consent_withdrawals"],
        },
    )
    block(
        "10",
        "reconsideration",
        "Negative decisions and reconsideration",
        "Every negative second-reviewed; requests within 30 days; overturn rate",
        {
            "negative_decisions": c["negative_decisions"],
            "second_reviewed_pct": pct(c["negatives_second_reviewed"], c["negative_decisions"]),
            "episodes_with_negative": c["negative_episodes"],
            "requested": c["reconsideration_requested"],
            "request_rate_pct": pct(c["reconsideration_requested"], c["negative_episodes"]),
            "within_window_pct": pct(
                c["reconsideration_in_window"], c["reconsideration_requested"]
            ),
            "upheld": c["reconsideration_upheld"],
            "overturned": c["reconsideration_overturned"],
            "overturn_rate_pct": pct(
                c["reconsideration_overturned"],
                c["reconsideration_overturned"] + c["reconsideration_upheld"],
            ),
            "pending": c["reconsideration_pending"],
        },
    )
    ret = _dist(figures, "return_days")
    block(
        "11",
        "return",
        "Return",
        "Without undue delay; joint risk assessment; voluntary; receiving organisation; "
        "no child return without a best-interests assessment",
        {
            "requested": c["return_requested"],
            "completed": c["returned"],
            "cancelled": c["returns_cancelled"],
            "median_days_request_to_departure": ret["median"],
            "p90_days_request_to_departure": ret["p90"],
            "risk_assessed_pct": pct(c["return_risk_assessed"], c["returned"]),
            "voluntary_pct": pct(c["return_voluntary"], c["returned"]),
            "receiving_organisation_pct": pct(c["return_receiving_org"], c["returned"]),
            "child_returns_without_best_interests": c["return_child_without_bia"],
        },
    )
    follow = {
        f"day_{checkpoint}": {"due": due, "reached": reached, "reached_pct": pct(reached, due)}
        for checkpoint, (due, reached) in figures.follow_ups.items()
    }
    block(
        "12",
        "post_return",
        "After return",
        "Follow-up reached at each checkpoint; re-trafficking",
        {
            "reintegration_started": c["reintegration"],
            "follow_up": follow,
            "re_trafficking_reports": c["re_trafficked"],
            "re_trafficking_rate_pct": pct(c["re_trafficked"], c["returned"]),
        },
    )
    block(
        "P",
        "presumed_vs_identified",
        "Presumed and identified victims",
        "Share of presumed victims identified",
        {
            "presumed": c["screened"],
            "identified": c["identified"],
            "identified_per_presumed": ratio(c["identified"], c["screened"]),
            "with_a_negative_decision": c["negative_episodes"],
        },
    )
    return blocks


def access_figures(session: Session, f: Filters, *, now: datetime) -> dict[str, Any]:
    """Indicator 17: break-glass use and reads of decrypted fields, from the audit trail."""
    start, end = _bounds(f)
    period: list[ColumnElement[bool]] = []
    if start is not None:
        period.append(AuditEvent.occurred_at >= start)
    if end is not None:
        period.append(AuditEvent.occurred_at < end)
    scoped: list[ColumnElement[bool]] = []
    if f.has_dimensions:
        current = select(E.case_id).where(E.is_current.is_(True), *dimension_conditions(f))
        scoped.append(AuditEvent.case_id.in_(current))
    counts: dict[str, int] = {}
    for action in ("break_glass", "fields_revealed", "fields_read", "access_denied"):
        if action == "access_denied" and f.has_dimensions:
            counts[action] = 0  # denials name no case in scope of a dimension filter
            continue
        stmt = (
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, *period, *scoped)
        )
        counts[action] = int(execute(session, stmt).scalar() or 0)
    pending = int(
        session.scalar(
            select(func.count())
            .select_from(BreakGlassGrant)
            .where(BreakGlassGrant.reviewed_at.is_(None))
        )
        or 0
    )
    unjustified = int(
        session.scalar(
            select(func.count())
            .select_from(BreakGlassGrant)
            .where(BreakGlassGrant.review_outcome == "unjustified")
        )
        or 0
    )
    return {
        "number": "17",
        "id": "access",
        "title": "Break-glass and decrypted reads",
        "standard": "0 unexplained: every break-glass reviewed",
        "values": {
            "break_glass_events": counts["break_glass"],
            "grants_awaiting_review": pending,
            "grants_found_unjustified": unjustified,
            "fields_revealed_events": counts["fields_revealed"],
            "fields_read_events": counts["fields_read"],
            "access_denied_events": counts["access_denied"],
        },
    }


def indicators(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    group_by: str | None = None,
    now: datetime | None = None,
    refresh_first: bool = True,
    small_cell: int = 5,
    collected: dict[str, GroupFigures] | None = None,
) -> dict[str, Any]:
    """The full indicator set (optionally per group); refreshes the store first."""
    moment = now or utcnow()
    if refresh_first:
        refresh(session, ctx, now=moment)
    groups = (
        collected
        if collected is not None and group_by is None
        else collect(session, ctx, f, now=moment, group_by=group_by)
    )
    body: dict[str, Any] = {
        "generated_at": moment.isoformat(),
        "filters": f.as_params(),
        "basis": f.basis,
    }
    if group_by is None:
        figures = groups.get("all", GroupFigures(counts={s.name: 0 for s in COUNTS}))
        body["population"] = {
            "episodes": figures.counts["episodes"],
            "re_opened_after_re_trafficking": figures.counts["re_trafficking_episodes"],
        }
        body["indicators"] = [*indicator_blocks(figures), access_figures(session, f, now=moment)]
        return body
    body["group_by"] = group_by
    body["groups"] = [
        {
            "key": key,
            "episodes": figures.counts["episodes"],
            "small": figures.counts["episodes"] < small_cell,
            "indicators": indicator_blocks(figures),
        }
        for key, figures in sorted(groups.items())
    ]
    return body


def dashboard(
    session: Session, ctx: AppContext, f: Filters, *, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the dashboard shows: one store refresh, one aggregate pass over the store
    for the indicators and the funnel, one for the trend, one over the open deadlines."""
    moment = now or utcnow()
    refresh(session, ctx, now=moment)
    groups = collect(session, ctx, f, now=moment, with_funnel=True)
    body = indicators(session, ctx, f, now=moment, refresh_first=False, collected=groups)
    shape = funnel(session, ctx, f, now=moment, refresh_first=False, figures=groups.get("all"))
    return {
        "indicators": body,
        "funnel": shape,
        "trend": decision_trend(session, ctx, f, now=moment, refresh_first=False),
        "overdue": overdue_by_agency(session, ctx, f, now=moment, refresh_first=False),
    }


# --------------------------------------------------------------------------- funnel


FUNNEL_STEPS: tuple[tuple[str, str], ...] = (
    ("episodes", "Detected"),
    ("screened", "Presumed victim (screened)"),
    ("referred", "Referred"),
    ("rg_decided", "Reasonable-grounds decision"),
    ("reflection_started", "Recovery and reflection"),
    ("id_decided", "Identification decision"),
    ("identified", "Identified"),
    ("support_started", "Long-term support"),
    ("return_requested", "Return planned"),
    ("returned", "Returned, handed over"),
    ("closed", "Closed"),
)


def funnel(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    now: datetime | None = None,
    refresh_first: bool = True,
    figures: GroupFigures | None = None,
) -> dict[str, Any]:
    """Episodes that ever reached each step, and where the current episodes stand now.

    Always on the detection basis. ``figures`` from ``collect(..., with_funnel=True)`` are
    used as they are; otherwise one narrow aggregate pass computes just the funnel.
    """
    from app.cases.workflow import Stage

    moment = now or utcnow()
    if refresh_first:
        refresh(session, ctx, now=moment)
    if figures is not None and figures.funnel_reached is not None:
        reached, current = figures.funnel_reached, figures.current_stages or {}
    else:
        detection = replace(f, basis="detection")
        steps = [
            func.count().filter(COUNT_BY_NAME[key].condition(moment)).label(key)
            for key, _label in FUNNEL_STEPS
        ]
        stmt = select(*steps, *_funnel_columns(detection, moment)).where(
            *base_conditions(detection)
        )
        reached, current = _funnel_figures(execute(session, stmt).mappings().one(), detection)
    return {
        "generated_at": moment.isoformat(),
        "filters": f.as_params(),
        "reached": [
            {"step": key, "label": label, "episodes": reached.get(key, 0)}
            for key, label in FUNNEL_STEPS
        ],
        "current_stage": [
            {"stage": stage.value, "cases": current.get(stage.value, 0)} for stage in Stage
        ],
    }


# --------------------------------------------------------------------------- overdue


def overdue_by_agency(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    now: datetime | None = None,
    refresh_first: bool = True,
) -> dict[str, Any]:
    """Open cases' overdue and soon-due deadlines per agency and kind.

    The deadlines are those of ``app.cases.transitions.case_deadlines`` (the function behind
    ``overdue_report`` and the case screens), kept per case in the store.
    """
    moment = now or utcnow()
    if refresh_first:
        refresh(session, ctx, now=moment)
    D = open_deadlines.c
    overdue = D.due_at < moment
    soon = and_(D.soon_from <= moment, D.due_at >= moment)
    stmt = select(
        D.owning_agency_id,
        D.kind,
        func.count().filter(overdue).label("overdue"),
        func.count().filter(soon).label("due_soon"),
    ).where(D.soon_from <= moment)
    if f.has_dimensions:
        current = select(E.case_id).where(E.is_current.is_(True), *dimension_conditions(f))
        stmt = stmt.where(D.case_id.in_(current))
    stmt = stmt.group_by(D.owning_agency_id, D.kind)
    rows = list(execute(session, stmt))
    names = {
        a.id: (a.name, a.type)
        for a in session.execute(
            select(Agency.id, Agency.name, Agency.type).where(
                Agency.id.in_({r[0] for r in rows} or {uuid.UUID(int=0)})
            )
        )
    }
    agencies: dict[uuid.UUID, dict[str, Any]] = {}
    for agency_id, kind, n_overdue, n_soon in rows:
        name, type_ = names.get(agency_id, ("(unknown agency)", "unknown"))
        entry = agencies.setdefault(
            agency_id,
            {
                "agency_id": str(agency_id),
                "agency": name,
                "agency_type": type_,
                "overdue": 0,
                "due_soon": 0,
                "by_kind": {},
            },
        )
        entry["overdue"] += int(n_overdue)
        entry["due_soon"] += int(n_soon)
        entry["by_kind"][kind] = {"overdue": int(n_overdue), "due_soon": int(n_soon)}
    ordered = sorted(agencies.values(), key=lambda a: (-a["overdue"], a["agency"]))
    return {"generated_at": moment.isoformat(), "filters": f.as_params(), "agencies": ordered}


# --------------------------------------------------------------------------- drill-down


def drill_down(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    indicator: str | None = None,
    overdue_kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
    refresh_first: bool = True,
) -> dict[str, Any]:
    """Pseudonymised case references behind a figure: reference, stage, dates, codes."""
    moment = now or utcnow()
    if refresh_first:
        refresh(session, ctx, now=moment)
    if limit < 1 or limit > ctx.settings.max_page_size:
        raise InvalidInput(f"limit must be between 1 and {ctx.settings.max_page_size}")
    if offset < 0:
        raise InvalidInput("offset must not be negative")
    where = base_conditions(f)
    if indicator:
        spec = COUNT_BY_NAME.get(indicator)
        if spec is None:
            raise InvalidInput(f"unknown indicator {indicator!r}")
        condition = spec.condition(moment)
        if spec.sum_of is not None:
            condition = spec.sum_of > 0
        where = [*where, condition, anchored(f, spec.anchor)]
    if overdue_kind == "any":
        # The current episode carries the case's earliest open deadline: no join.
        where = [*where, E.is_current.is_(True), E.next_due_at < moment]
    elif overdue_kind:
        D = open_deadlines.c
        overdue_cases = select(D.case_id).where(D.due_at < moment, D.kind == overdue_kind)
        # "IS TRUE" keeps the subquery a hashed set probed once per row (one scan of each
        # table). As a plain IN, PostgreSQL turns it into a semi-join and, expecting 1 % of
        # the rows (it cannot estimate the row-level-security qual), picks a nested loop
        # of one index probe per overdue case: 5x slower at 100,000 cases.
        where = [*where, E.is_current.is_(True), E.case_id.in_(overdue_cases).is_(True)]
    columns = (
        E.case_id,
        E.episode,
        E.reference,
        E.stage,
        E.country_profile,
        E.owning_agency_id,
        E.age_band,
        E.detected_on,
        E.referred_at,
        E.rg_decided_at,
        E.id_decided_at,
    )
    # The page and the total in one pass: count(*) OVER () is evaluated over every
    # matching episode before LIMIT applies. Only a page past the end needs a count. The
    # window also keeps the ordering outside the scan: expecting few rows (see above), the
    # planner would otherwise walk the detected_on index and fetch every row at random.
    matching = (
        select(*columns, func.count().over().label("total_matching")).where(*where).subquery()
    )
    stmt = (
        select(matching)
        .order_by(matching.c.detected_on.desc(), matching.c.reference, matching.c.episode)
        .limit(limit)
        .offset(offset)
    )
    rows = list(execute(session, stmt))
    if rows:
        total = rows[0].total_matching
    elif offset == 0:
        total = 0
    else:
        count = select(func.count()).select_from(episodes).where(*where)
        total = execute(session, count).scalar()
    items = [
        {
            "case_id": str(r.case_id),
            "reference": r.reference,
            "episode": r.episode,
            "stage": r.stage,
            "country_profile": r.country_profile,
            "owning_agency_id": str(r.owning_agency_id),
            "age_band": r.age_band,
            "detected_on": r.detected_on.isoformat(),
            "referred_at": r.referred_at.isoformat() if r.referred_at else None,
            "rg_decided_at": r.rg_decided_at.isoformat() if r.rg_decided_at else None,
            "id_decided_at": r.id_decided_at.isoformat() if r.id_decided_at else None,
        }
        for r in rows
    ]
    return {
        "filters": f.as_params(),
        "indicator": indicator,
        "total": int(total or 0),
        "limit": limit,
        "offset": offset,
        "items": items,
    }


# --------------------------------------------------------------------------- trend


TREND_BINS: tuple[tuple[int, int | None], ...] = (
    (0, 30),
    (31, 90),
    (91, 180),
    (181, 365),
    (366, 730),
    (731, None),
)


def _bin_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"> {low - 1}"


def _decision_trend_in_sql(session: Session, where: list[ColumnElement[bool]]) -> dict[str, Any]:
    """PostgreSQL: per quarter of decision, n, median, P90 and the bins, in one pass."""
    days = E.id_days
    bins = [
        func.count().filter(and_(days >= low, *([days <= high] if high is not None else [])))
        for low, high in TREND_BINS
    ]
    stmt = (
        select(
            E.id_decided_quarter,
            func.count(),
            func.percentile_cont(0.5).within_group(days),
            func.percentile_cont(0.9).within_group(days),
            *bins,
        )
        .where(*where)
        .group_by(E.id_decided_quarter)
    )
    totals = [0] * len(TREND_BINS)
    trend = []
    for quarter, n, median, p90, *in_bins in execute(session, stmt):
        trend.append(
            {
                "quarter": quarter or "unknown",
                "n": int(n),
                "median": _rounded(median),
                "p90": _rounded(p90),
            }
        )
        for i, count in enumerate(in_bins):
            totals[i] += int(count)
    return {
        "distribution": [
            {"label": _bin_label(low, high), "n": n}
            for (low, high), n in zip(TREND_BINS, totals, strict=True)
        ],
        "trend": sorted(trend, key=lambda t: str(t["quarter"])),
    }


def decision_trend(
    session: Session,
    ctx: AppContext,
    f: Filters,
    *,
    now: datetime | None = None,
    refresh_first: bool = True,
) -> dict[str, Any]:
    """RG -> identification days: distribution (bins) and median per quarter of decision."""
    moment = now or utcnow()
    if refresh_first:
        refresh(session, ctx, now=moment)
    where = [*base_conditions(f), E.id_days.is_not(None), anchored(f, E.id_decided_at)]
    if _is_postgresql(session):
        return _decision_trend_in_sql(session, where)
    stmt = (
        select(E.id_decided_quarter, E.id_days, func.count())
        .where(*where)
        .group_by(E.id_decided_quarter, E.id_days)
    )
    by_quarter: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    bins = TREND_BINS
    counts = [0] * len(bins)
    for quarter, days, n in execute(session, stmt):
        by_quarter[quarter or "unknown"][int(days)] += int(n)
        for i, (low, high) in enumerate(bins):
            if days >= low and (high is None or days <= high):
                counts[i] += int(n)
                break
    return {
        "distribution": [
            {"label": _bin_label(low, high), "n": n}
            for (low, high), n in zip(bins, counts, strict=True)
        ],
        "trend": [
            {
                "quarter": quarter,
                "n": sum(hist.values()),
                "median": percentile(hist, 0.5),
                "p90": percentile(hist, 0.9),
            }
            for quarter, hist in sorted(by_quarter.items())
        ],
    }


__all__ = [
    "COUNTS",
    "DURATIONS",
    "GROUP_DIMENSIONS",
    "Filters",
    "decision_trend",
    "drill_down",
    "funnel",
    "indicators",
    "make_filters",
    "overdue_by_agency",
    "percentile",
]
